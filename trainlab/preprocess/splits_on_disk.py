"""Preprocessed splits on disk: an output directory is replaced only when asked, and written all at once (a
temporary directory beside it, renamed into place), so a failure leaves nothing half-written."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..errors import DataError

INFO_FILE = "preprocess.json"


def check_output(output: Path, overwrite: bool) -> None:
    """DataError unless ``output`` is new, empty, or (with ``overwrite``) an earlier preprocessing output."""
    if output.exists() and not output.is_dir():
        raise DataError(f"--output {output} is a file; pass a directory for the splits")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not (output / INFO_FILE).is_file():
        raise DataError(
            f"--output directory {output} already holds other files; pass a new or empty directory"
        )
    if not overwrite:
        try:
            info = json.loads((output / INFO_FILE).read_text())
        except (OSError, ValueError):
            info = {}
        raise DataError(
            f"--output {output} already holds preprocessed splits (of {info.get('source', '?')}, seed "
            f"{info.get('seed', '?')}) that runs may have trained on; choose a new directory, or pass "
            f"--overwrite to replace them"
        )


def write_atomically(output: Path, splits: dict[str, Any], info: dict[str, Any]) -> None:
    """Save ``splits`` and ``info`` beside ``output``, then rename them into place: all or nothing."""
    from datasets import DatasetDict

    from ..utils.quiet import datasets_progress_bars_off

    output.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (unlike mkdtemp) honours the umask, so the output gets the user's usual permissions.
    staging = output.parent / f".{output.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        with datasets_progress_bars_off():  # the command prints one summary line, not a bar per split
            DatasetDict(splits).save_to_disk(str(staging))
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if output.exists():
            # Move the old output aside first so the new one appears with a single rename.
            retired = output.parent / f".{output.name}.old-{uuid.uuid4().hex[:12]}"
            output.rename(retired)
            staging.rename(output)
            shutil.rmtree(retired)
        else:
            staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["INFO_FILE", "check_output", "write_atomically"]
