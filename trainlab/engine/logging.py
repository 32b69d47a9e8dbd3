"""One log stream per run: a rank-aware logger, a rank-0 progress bar, and metric writers (jsonl, TensorBoard)."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

LOGGER_NAME = "trainlab"


class EarlyRecords(logging.Handler):
    """Keeps what a job logs before its run directory exists (data loading), for the run's log file."""

    def __init__(self, capacity: int = 1000) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.capacity = capacity

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < self.capacity:
            self.records.append(record)


def start_job_logging(rank: int, level: int = logging.INFO) -> logging.Logger:
    """Logging for a training job before its run directory exists: the console now, the log file later
    (``setup_logger`` with a log file writes these early records into it first)."""
    logger = setup_logger(rank, level=level, console=sys.stdout if rank == 0 else sys.stderr)
    if rank == 0:
        logger.addHandler(EarlyRecords())
    return logger


def setup_logger(rank: int, log_file: str | Path | None = None, level: int = logging.INFO,
                 console: Any = None) -> logging.Logger:
    """Rank 0 logs INFO to the console and ``log_file``; other ranks log warnings and errors, prefixed with
    their rank. Without a log file (evaluation, prediction) the console is stderr: stdout keeps the results.

    Each record is written by one handler call, so lines from different ranks never interleave mid-line.
    """
    logger = logging.getLogger(LOGGER_NAME)
    early: list[logging.LogRecord] = []
    for handler in list(logger.handlers):
        if isinstance(handler, EarlyRecords):
            early = handler.records
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level if rank == 0 else logging.WARNING)
    logger.propagate = False
    prefix = "" if rank == 0 else f"[rank {rank}] "
    formatter = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    if console is None:
        console = sys.stdout if rank == 0 and log_file is not None else sys.stderr
    stream = logging.StreamHandler(console)
    stream.setFormatter(formatter)
    logger.addHandler(stream)
    if log_file is not None and rank == 0:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(formatter)
        for record in early:
            file_handler.handle(record)
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
        self.index = 0
        self._fresh = False  # postfix values not yet shown in a log line
        self._bar = None
        if self.interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False)

    def __iter__(self) -> Iterator[Any]:
        for index, item in enumerate(self.iterable, start=1):
            self.index = index
            yield item
            if self._bar is not None:
                self._bar.update(1)
            elif self._fresh and (self.index % self.log_every == 0 or self.index == self.total):
                self._log_line()
        if self._bar is not None:
            self._bar.close()

    def __len__(self) -> int:
        return self.total or 0

    def set_postfix(self, values: Mapping[str, float]) -> None:
        """Show ``values`` with the bar (without a terminal: in the next periodic log line)."""
        self.postfix = {k: _fmt(v) for k, v in values.items()}
        self._fresh = True
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def report(self, values: Mapping[str, float]) -> None:
        """Show ``values`` now: with the bar, or (without a terminal) as a log line of this very moment."""
        self.set_postfix(values)
        if self._bar is None:
            self._log_line()

    def _log_line(self) -> None:
        self._fresh = False
        if self.rank == 0 and self.postfix:
            text = " ".join(f"{k}={v}" for k, v in self.postfix.items())
            get_logger().info("%s %d/%s %s", self.desc, self.index, self.total or "?", text)


def _fmt(value: float) -> str:
    if isinstance(value, float) and (value == 0 or math.isfinite(value) and 1e-3 <= abs(value) < 1e4):
        return f"{value:.4f}"
    return f"{value:.3e}" if isinstance(value, float) else str(value)
