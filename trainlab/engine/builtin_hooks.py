"""The hooks every run has: checkpointing (periodic, best, on interrupt) and early stopping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..registries import HOOKS
from . import distributed
from .checkpoint import MODEL_FILE
from .hooks import Hook

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
            trainer.checkpointer.save(trainer.last_metrics)
            self.last_saved_step = trainer.global_step

    def after_train_step(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        if trainer.interrupted:
            self._save(trainer)
            raise TrainingInterrupted(
                f"interrupted at step {trainer.global_step}; checkpoint saved in {trainer.checkpointer.directory}. "
                f"Continue with TRAINER.RESUME auto (or --resume)"
            )
        every = trainer.settings["save_every_steps"]
        if trainer.settings["save"] and every and trainer.global_step % every == 0:
            self._save(trainer)

    def after_evaluate(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        monitor = trainer.settings["monitor"]
        if monitor not in metrics:
            if not self.warned_missing_monitor:
                trainer.logger.warning("TRAINER.MONITOR %s is not among the evaluation metrics (%s): no best checkpoint",
                                       monitor, ", ".join(metrics))
                self.warned_missing_monitor = True
            return
        if trainer.settings["save"]:
            if trainer.checkpointer.save_if_best(metrics, monitor, trainer.settings["monitor_mode"]):
                self.last_saved_step = trainer.global_step
        else:
            trainer.checkpointer.judge(metrics[monitor], trainer.settings["monitor_mode"])

    def after_epoch(self, trainer: BaseTrainer, epoch: int, metrics: Mapping[str, float]) -> None:
        if trainer.settings["save"]:
            self._save(trainer)

    def after_train(self, trainer: BaseTrainer) -> None:
        if not trainer.settings["save"]:
            return
        self._save(trainer)
        best = trainer.checkpointer.best_checkpoint()
        if best is not None:
            from safetensors.torch import load_model

            load_model(trainer.unwrapped_model, str(best / MODEL_FILE), device=str(trainer.device))
            trainer.logger.info("loaded the best checkpoint %s (%s = %.4g)", best.name, trainer.settings["monitor"],
                                trainer.checkpointer.best_value)
        if distributed.is_main_process():
            export_model(trainer)
        distributed.barrier()


def export_model(trainer: BaseTrainer) -> None:
    """Write the model's weights to RUN_DIR/OUTPUT_FILENAME and, for HF-style models, RUN_DIR/model/ (save_pretrained)."""
    from safetensors.torch import save_model

    from .checkpoint import write_text_atomic

    model = trainer.unwrapped_model
    target = trainer.run_dir / trainer.settings["output_filename"]
    tmp = target.with_name(f".{target.name}.tmp")
    save_model(model, str(tmp))
    tmp.replace(target)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(str(trainer.run_dir / "model"))
        write_text_atomic(trainer.run_dir / "model" / ".complete", "")
    trainer.logger.info("saved the final model to %s", target.parent)


@HOOKS.register_module()
class EarlyStoppingHook(Hook):
    """Stops training after PATIENCE evaluations in a row without improvement of MONITOR."""

    priority = 60

    def after_evaluate(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        patience = trainer.settings["patience"]
        if patience and trainer.checkpointer.bad_evaluations >= patience:
            trainer.logger.info("early stopping: %s did not improve for %d evaluation(s) (best %.4g)",
                                trainer.settings["monitor"], patience, trainer.checkpointer.best_value)
            trainer.should_stop = True
