"""Silencing ``datasets``' progress bars for a block (a config check or a command that prints its own summary)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def datasets_progress_bars_off() -> Iterator[None]:
    """No ``datasets`` progress bar inside the block; the previous setting afterwards."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    were_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not were_disabled:
            enable_progress_bars()
