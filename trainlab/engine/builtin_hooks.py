"""The hooks every run has: checkpointing (periodic, best, on interrupt) and early stopping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from ..registries import HOOKS
from . import distributed
from .hooks import Hook
from .loop import timed

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; a checkpoint was saved at the last step boundary."""


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Saves every SAVE_EVERY_STEPS steps and each epoch, marks the best by MONITOR, saves on SIGTERM/SIGINT,
    and at the end loads the best weights and exports them (OUTPUT_FILENAME, and an HF layout where possible)."""

    priority = 40

    def __init__(self) -> None:
        self.last_saved_step = -1
        self.warned_missing_monitor = False

    def _save(self, trainer: BaseTrainer) -> None:
        if trainer.global_step != self.last_saved_step:
            trainer.save_checkpoint()
            self.last_saved_step = trainer.global_step

    def after_train_step(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        if trainer.interrupted:
            self._save(trainer)
            raise TrainingInterrupted(
                f"interrupted at step {trainer.global_step}; checkpoint saved in {trainer.checkpointer.directory}. "
                f"Continue with TRAINER.RESUME auto (or --resume)"
            )
        every = trainer.settings.save_every_steps
        if trainer.settings.save and every and trainer.global_step % every == 0:
            self._save(trainer)

    def after_evaluate(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        settings = trainer.settings
        if trainer.global_step == 0:  # EVAL_BEFORE_TRAIN: the starting weights, which the user already has
            return
        if settings.monitor not in metrics:
            if not self.warned_missing_monitor:
                trainer.logger.warning("TRAINER.MONITOR %s is not among the evaluation metrics (%s): no best checkpoint",
                                       settings.monitor, ", ".join(metrics) or "none")
                self.warned_missing_monitor = True
            return
        value = metrics[settings.monitor]
        if not trainer.checkpointer.judge(value, settings.monitor_mode, trainer.global_step) or not settings.save:
            return
        path = trainer.save_checkpoint()
        self.last_saved_step = trainer.global_step
        trainer.checkpointer.mark_best(path, settings.monitor, value)

    def after_epoch(self, trainer: BaseTrainer, epoch: int, metrics: Mapping[str, float]) -> None:
        if trainer.settings.save:
            self._save(trainer)

    def after_train(self, trainer: BaseTrainer) -> None:
        if not trainer.settings.save:
            return
        self._save(trainer)
        best = trainer.checkpointer.best_checkpoint()
        # Every rank must agree: a trainer may have changed its model after the best step (a prototype LoRA
        # trainer merges its adapters on rank 0 at the last epoch), and then the model is exported as it is.
        fits = best is not None and trainer.checkpointer.fits(best)
        if best is not None and distributed.all_reduce_min(torch.tensor(float(fits), device=trainer.device)).item() == 1.0:
            trainer.strategy.load_checkpoint_weights(best)
            trainer.logger.info("loaded the best checkpoint %s (%s = %.4g)", best.name, trainer.settings.monitor,
                                trainer.checkpointer.best_value)
        elif best is not None:
            trainer.logger.warning("the model changed after the best checkpoint %s was written (e.g. adapters merged by "
                                   "the trainer): exporting the model as it is now", best.name)
        with timed(trainer, "export"):
            target = trainer.strategy.export(trainer.run_dir, trainer.settings.output_filename)
            distributed.barrier()
        trainer.logger.info("saved the final model to %s", target.parent)


@HOOKS.register_module()
class EarlyStoppingHook(Hook):
    """Stops training after PATIENCE evaluations in a row without improvement of MONITOR."""

    priority = 60

    def after_evaluate(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        patience = trainer.settings.patience
        if patience and trainer.checkpointer.bad_evaluations >= patience:
            trainer.logger.info("early stopping: %s did not improve for %d evaluation(s) (best %.4g)",
                                trainer.settings.monitor, patience, trainer.checkpointer.best_value)
            trainer.should_stop = True
