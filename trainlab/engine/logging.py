"""One log stream per run: a rank-aware logger, a rank-0 progress bar, and metric writers (jsonl, TensorBoard)."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

LOGGER_NAME = "trainlab"


def setup_logger(rank: int, log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Rank 0 logs INFO to the console and ``log_file``; other ranks log warnings and errors, prefixed with their rank.

    Each record is written by one handler call, so lines from different ranks never interleave mid-line.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level if rank == 0 else logging.WARNING)
    logger.propagate = False
    prefix = "" if rank == 0 else f"[rank {rank}] "
    formatter = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout if rank == 0 else sys.stderr)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if log_file is not None and rank == 0:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


class ProgressBar:
    """tqdm on rank 0 when writing to a terminal; elsewhere a log line every ``log_every`` iterations."""

    def __init__(self, iterable: Iterable, total: int | None, desc: str, rank: int, log_every: int) -> None:
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.rank = rank
        self.log_every = max(1, log_every)
        self.interactive = rank == 0 and sys.stdout.isatty()
        self.postfix: dict[str, str] = {}
        self._bar = None
        if self.interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)

    def __iter__(self) -> Iterator[Any]:
        for index, item in enumerate(self.iterable, start=1):
            yield item
            if self._bar is not None:
                self._bar.update(1)
            elif self.rank == 0 and self.postfix and (index % self.log_every == 0 or index == self.total):
                get_logger().info("%s %d/%s %s", self.desc, index, self.total or "?", self._postfix_text())
        if self._bar is not None:
            self._bar.close()

    def __len__(self) -> int:
        return self.total or 0

    def set_postfix(self, values: Mapping[str, float]) -> None:
        self.postfix = {k: _fmt(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def _postfix_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.postfix.items())


def _fmt(value: float) -> str:
    if isinstance(value, float) and (value == 0 or math.isfinite(value) and 1e-3 <= abs(value) < 1e4):
        return f"{value:.4f}"
    return f"{value:.3e}" if isinstance(value, float) else str(value)


class MetricsWriter:
    """Appends ``{"step": ..., "epoch": ..., "<tag>": value}`` lines to metrics.jsonl and scalars to TensorBoard."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional at run time; the jsonl file always exists
                get_logger().warning("tensorboard is not installed: metrics go to metrics.jsonl only")
            else:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def write(self, metrics: Mapping[str, float], step: int, epoch: int | None = None) -> None:
        record = {"step": step, "epoch": epoch, **{k: _json_number(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
