"""What one process of a run is: its rank, the world size, its device, the run directory and its logger."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class RunContext:
    """Made once per process by ``BaseTrainer.setup``; ``run_dir`` is None for evaluation-only set-ups."""

    rank: int
    world_size: int
    device: torch.device
    run_dir: Path | None
    logger: logging.Logger

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0
