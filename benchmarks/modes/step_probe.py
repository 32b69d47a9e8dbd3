"""A TrainLab hook that measures each rank of a run from inside: when every optimizer step ended, the peak memory
and the model's size; and reading those measurements back. Used by ``benchmarks/gpu_check.py`` and
``benchmarks/fsdp_memory.py`` through ``--import benchmarks.modes.step_probe`` and
``TRAINER.HOOKS [{NAME: StepProbeHook}]``.
"""

from __future__ import annotations

import itertools
import json
import resource
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trainlab.engine.hooks import Hook
from trainlab.registries import HOOKS

PROBE_GLOB = "probe-rank*.json"


@HOOKS.register_module()
class StepProbeHook(Hook):
    """Writes ``RUN_DIR/probe-rank<r>.json`` after training: step end times, peak memory, parameter count.

    On CUDA each time is taken after a synchronize, so it includes the step's kernels. Peak device memory is
    ``torch.cuda.max_memory_allocated`` since the process started; peak host memory is the process's maximum RSS.
    """

    priority = 90  # after the built-in hooks: a step's checkpoint, if any, is part of its time

    def __init__(self) -> None:
        self.step_end_times: list[float] = []

    def after_train_step(self, trainer: Any, metrics: Mapping[str, float]) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        self.step_end_times.append(time.perf_counter())

    def after_train(self, trainer: Any) -> None:
        cuda = trainer.device.type == "cuda"
        params = list(trainer.unwrapped_model.parameters())  # sharded ones are DTensors: numel() is the full size
        probe = {
            "rank": trainer.rank,
            "world_size": trainer.world_size,
            "device": str(trainer.device),
            "device_name": torch.cuda.get_device_name(trainer.device) if cuda else "cpu",
            "step_end_times": self.step_end_times,
            "peak_device_bytes": torch.cuda.max_memory_allocated(trainer.device) if cuda else None,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
            "parameters": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        }
        (trainer.run_dir / f"probe-rank{trainer.rank}.json").write_text(json.dumps(probe), encoding="utf-8")


def read_probes(output_dir: Path) -> list[dict[str, Any]]:
    """Every rank's probe of the one run under ``output_dir`` (OUTPUT_DIR), by rank; empty if none was written."""
    files = sorted(Path(output_dir).glob(f"*/*/{PROBE_GLOB}"))
    return sorted((json.loads(file.read_text(encoding="utf-8")) for file in files), key=lambda probe: probe["rank"])


def step_seconds(probe: Mapping[str, Any], skip: int = 0) -> float | None:
    """Median duration of steps 2, 3, ... (step 1 has no start mark), leaving out the first ``skip`` of them."""
    times = probe["step_end_times"]
    durations = [later - earlier for earlier, later in itertools.pairwise(times)][skip:]
    return statistics.median(durations) if durations else None
