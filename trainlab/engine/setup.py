"""Pieces of a process's set-up that BaseTrainer.setup assembles: seeds, the run directory, signals, hooks."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..registries import HOOKS
from . import distributed
from .hooks import Hook, sort_hooks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_run_dir(output_dir: str, project_name: str, run_dir: str) -> Path:
    """``RUN_DIR`` when set, else a new ``OUTPUT_DIR/PROJECT_NAME/<timestamp>`` (decided by rank 0, shared with all)."""
    path = Path(run_dir) if run_dir else None
    if path is None and distributed.is_main_process():
        base = Path(output_dir) / project_name
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = base / stamp
        suffix = 1
        while path.exists():
            path, suffix = base / f"{stamp}-{suffix}", suffix + 1
    path = Path(distributed.broadcast_object(str(path) if path else None))
    if distributed.is_main_process():
        path.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    return path


def install_interrupt_handlers(request_stop: Callable[[int], bool]) -> None:
    """SIGTERM (a scheduler's pre-emption) and the first Ctrl-C call ``request_stop(signum)``, which asks for a
    checkpoint at the next step boundary; when it returns False (a second Ctrl-C) the process stops at once."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        if not request_stop(signum):
            raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def build_hooks(defaults: list[Hook], configured: list[Mapping[str, Any]]) -> list[Hook]:
    """The default hooks plus those named in TRAINER.HOOKS, in priority order."""
    from ..registry import build_from_cfg

    return sort_hooks([*defaults, *(build_from_cfg(cfg, HOOKS) for cfg in configured)])


__all__ = ["build_hooks", "install_interrupt_handlers", "make_run_dir", "seed_everything"]


