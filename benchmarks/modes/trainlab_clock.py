"""A TrainLab hook that feeds the benchmark's step clock, and reading a TrainLab run back as a mode result.

The trainlab mode runs the real ``trainlab train`` command with ``--import benchmarks.modes.trainlab_clock``
and ``TRAINER.HOOKS [{NAME: BenchmarkClockHook, OUTPUT: <file>}]``: the same timestamps as every other mode
(epoch starts, optimizer step ends), taken by the same ``StepClock``; TrainLab's own samples/s is not used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.common import StepClock
from trainlab.engine.hooks import Hook
from trainlab.registries import HOOKS


@HOOKS.register_module()
class BenchmarkClockHook(Hook):
    """On rank 0: the time each epoch's batches start and each optimizer step ends, written after training."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.clock = StepClock()

    def before_epoch(self, trainer: Any, epoch: int) -> None:
        self.clock.start_epoch()

    def after_train_step(self, trainer: Any, metrics: Mapping[str, float]) -> None:
        self.clock.tick()

    def after_train(self, trainer: Any) -> None:
        if trainer.rank == 0:
            Path(self.output).write_text(json.dumps(self.clock.to_dict()), encoding="utf-8")


def collect(run_dir: Path, clock_file: Path) -> dict[str, Any]:
    """The mode result of a finished run: its clock, the last logged training loss, the last validation accuracy."""
    result = json.loads(clock_file.read_text(encoding="utf-8"))
    final_loss = val_accuracy = None
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        final_loss = record.get("train/loss", final_loss)
        val_accuracy = record.get("val/accuracy", val_accuracy)
    return {**result, "final_loss": final_loss, "val_accuracy": val_accuracy}
