"""Pieces of a process's set-up that BaseTrainer.setup assembles: seeds, the run directory, signals, hooks."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..registries import HOOKS
from . import distributed
from .hooks import Hook, sort_hooks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# What a run writes into its directory; any of them there means the directory holds a run.
RUN_ENTRIES = ("checkpoints", "config.yaml", "metrics.jsonl", "train.log", "tb", "model", "adapter", "best_model*")


def run_dir_problem(path: Path) -> str | None:
    """Why a new run must not write into ``path`` (a file, or a folder holding a run or other files); None
    for a missing or empty folder."""
    if not path.exists():
        return None
    if not path.is_dir():
        return f"TRAINER.RUN_DIR {path} is a file, not a folder; choose another RUN_DIR"
    contents = sorted(entry.name + "/" * entry.is_dir() for entry in path.iterdir())
    if not contents:
        return None
    found = sorted({entry.name for pattern in RUN_ENTRIES for entry in path.glob(pattern)})
    if found:
        return (f"TRAINER.RUN_DIR {path} already holds a run ({', '.join(found[:5])}): continue it with --resume / "
                f"TRAINER.RESUME auto, or choose a new RUN_DIR")
    shown = ", ".join(contents[:5]) + (f", … ({len(contents)} in all)" if len(contents) > 5 else "")
    return f"TRAINER.RUN_DIR {path} is not empty ({shown}); a new run needs a new or empty folder: choose another RUN_DIR"


def make_run_dir(output_dir: str, project_name: str, run_dir: str, *, fresh: bool = False) -> Path:
    """``RUN_DIR`` when set, else a new ``OUTPUT_DIR/PROJECT_NAME/<timestamp>`` (decided by rank 0, shared with all).

    ``fresh``: a new run, which refuses a RUN_DIR that holds anything (ConfigError on every rank); a resumed
    run continues in its own directory, and so does a process that torchrun restarted (``--max-restarts``),
    which starts its job over where the failed attempt left no checkpoint. A timestamped directory is created
    exclusively, so two runs started in the same second never share one.
    """
    fresh = fresh and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    decision: tuple[str, str | None] | None = None
    if distributed.is_main_process():
        try:
            decision = (str(_create_run_dir(output_dir, project_name, run_dir, fresh)), None)
        except ConfigError as exc:
            decision = ("", str(exc))
    path, problem = distributed.broadcast_object(decision)
    if problem is not None:
        raise ConfigError(problem)
    distributed.barrier()
    return Path(path)


def _create_run_dir(output_dir: str, project_name: str, run_dir: str, fresh: bool) -> Path:
    key, path = ("TRAINER.RUN_DIR", Path(run_dir)) if run_dir else ("TRAINER.OUTPUT_DIR", Path(output_dir) / project_name)
    try:
        if run_dir:
            problem = run_dir_problem(path) if fresh else None
            if problem:
                raise ConfigError(problem)
            path.mkdir(parents=True, exist_ok=True)
            return path
        path.mkdir(parents=True, exist_ok=True)
        stamp, suffix = time.strftime("%Y%m%d-%H%M%S"), 0
        while True:
            run = path / (f"{stamp}-{suffix}" if suffix else stamp)
            try:
                run.mkdir()  # exclusive: a directory another run made in the same second is never shared
                return run
            except FileExistsError:
                suffix += 1
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create the run directory {exc.filename or path} ({exc.strerror}); "
                          f"choose a writable folder") from None


def save_run_config(run_dir: Path, config: Mapping[str, Any]) -> Path:
    """Write the resolved config to ``run_dir/config.yaml`` (rank 0).

    A resumed run calls this once its checkpoint is restored: a config.yaml already there that differs in
    more than TRAINER.RESUME is kept as ``config-<its time>.yaml``, so the run's earlier settings stay on record.
    """
    from ..config import Config
    from .checkpoint_files import write_text_atomic

    target = run_dir / "config.yaml"
    text = Config(config).dump()
    if target.is_file():
        previous = target.read_text(encoding="utf-8")
        if _without_resume(previous) == _without_resume(text):
            return target
        stamp, suffix = time.strftime("%Y%m%d-%H%M%S", time.localtime(target.stat().st_mtime)), 0
        while (kept := run_dir / f"config-{stamp}{f'-{suffix}' if suffix else ''}.yaml").exists():
            suffix += 1
        write_text_atomic(kept, previous)
    write_text_atomic(target, text)
    return target


def _without_resume(text: str) -> Any:
    """The config in ``text`` less TRAINER.RESUME (the text itself when it is not YAML, e.g. edited by hand)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(data, dict) and isinstance(data.get("TRAINER"), dict):
        data["TRAINER"].pop("RESUME", None)
    return data


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
    """The default hooks plus those named in TRAINER.HOOKS, in priority order; a hook named there replaces the
    default of the same class (its keywords win) instead of running twice."""
    from ..registry import build_from_cfg

    named = [build_from_cfg(cfg, HOOKS) for cfg in configured]
    kept = [hook for hook in defaults if type(hook) not in {type(n) for n in named}]
    return sort_hooks([*kept, *named])


__all__ = ["build_hooks", "install_interrupt_handlers", "make_run_dir", "run_dir_problem", "save_run_config", "seed_everything"]


