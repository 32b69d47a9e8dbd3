"""What of a trainer goes into a checkpoint and comes back on resume: the loop's counters, the position in the
epoch, the LR schedule, every rank's RNG state and the last metrics (the strategy adds the model's and the
optimizer's state). ``BaseTrainer`` inherits it; the state stays the trainer's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import distributed, loop
from .checkpoint import rng_state, set_rng_state
from .data import EpochPosition
from .setup import save_run_config


class TrainerState:
    """Checkpointing of the loop's state; mixed into ``BaseTrainer``, whose attributes it reads and restores."""

    def restore(self) -> None:
        """Resume a run (RESUME) or only load model weights (LOAD_FROM)."""
        if self.resume_from is not None:
            self.resume_from = self.checkpointer.intact(self.resume_from)  # a damaged one gives way to the newest intact
            state = self.checkpointer.load(self.resume_from, self.world_size)
            self.load_state_dict(state)
            if self.rank == 0 and self.config is not None:
                save_run_config(self.run_dir, self.config)
            self.logger.info("resumed from %s (epoch %d, step %d, %d samples of the epoch done)", self.resume_from,
                             self.epoch + 1, self.global_step, self.resume_position.samples)
        elif self.settings.load_from:
            file, missing, unexpected = self.checkpointer.load_weights(self.settings.load_from)
            self.logger.info("loaded weights from %s (missing %d, unexpected %d keys)", file, len(missing), len(unexpected))

    def state_dict(self) -> dict[str, Any]:
        """The loop's state for a checkpoint (the strategy adds the model's and the optimizer's); collective."""
        return {
            "scheduler": self.schedule.scheduler.state_dict() if self.schedule is not None else None,
            "global_step": self.global_step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "epoch_position": {"samples": self.epoch_samples_before + self.batch_in_epoch * self.settings.batch_size_train
                               * self.world_size, "world_size": self.world_size, "batch_size": self.settings.batch_size_train},
            "rng": distributed.all_gather_objects(rng_state()),
            "validated_step": self.validated_step, "last_metrics": dict(self.last_metrics),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.schedule is not None and state.get("scheduler") is not None:
            self.schedule.load_state_dict(state["scheduler"])
        self.global_step, self.epoch = state["global_step"], state["epoch"]
        self.validated_step = state.get("validated_step", -1)  # a checkpoint written by that validation: not twice
        self.last_metrics.update(state.get("last_metrics", {}))
        saved = state.get("epoch_position") or {"samples": state["batch_in_epoch"] * self.settings.batch_size_train
                                                 * self.world_size, "world_size": self.world_size,
                                                 "batch_size": self.settings.batch_size_train}
        self.resume_position = EpochPosition(**saved)
        if self.rank < len(state["rng"]):  # on another world size, new ranks keep their fresh seeds
            set_rng_state(state["rng"][self.rank])

    def save_checkpoint(self) -> Path:
        """A complete checkpoint of the current step (every rank calls it)."""
        meta = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "world_size": self.world_size,
                "strategy": type(self.strategy).__name__, "metrics": dict(self.last_metrics)}
        with loop.timed(self, "save"):
            return self.checkpointer.save(self.global_step, self.state_dict(), meta)


__all__ = ["TrainerState"]
