"""Export the adapter alone after training, for any trainer whose model carries LoRA or PEFT adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..peft.adapter import adapter_state_names, has_adapter, save_adapter
from ..peft.lora import lora_modules
from ..registries import HOOKS
from .hooks import Hook
from .loop import timed

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer

__all__ = ["ExportAdapterHook", "has_adapter"]


@HOOKS.register_module()
class ExportAdapterHook(Hook):
    """After training (the best weights loaded), the adapter alone goes to RUN_DIR/adapter (rank 0 writes).

    ``peft.PeftModel.from_pretrained(base, RUN_DIR/adapter)`` loads it: a Hugging Face PEFT model is saved in
    PEFT's format, TrainLab's LoRA in the trainlab-lora format plus PEFT's; ``trainlab merge-lora`` merges either.
    Nothing is written without TRAINER.SAVE, or when the model no longer has an adapter (a loop that merged it).
    """

    priority = 45  # after the checkpoint hook (40) restored the best weights

    def after_train(self, trainer: BaseTrainer) -> None:
        if not trainer.settings.save:
            return
        model = trainer.unwrapped_model
        if not has_adapter(model):
            trainer.logger.info("no adapter left to export (merged into the model during training)")
            return
        if any(layer.merged for layer in lora_modules(model).values()):
            trainer.logger.warning("LoRA layers are merged into their base weights: no adapter exported")
            return
        # Every rank takes part: a sharded strategy gathers the adapter's tensors (small) into rank 0.
        names = adapter_state_names(model)
        state = trainer.strategy.gather_state(names.__contains__)
        if trainer.rank != 0:
            return
        target = str(trainer.run_dir / "adapter")
        with timed(trainer, "export"):
            save_adapter(model, target, state=state)
        trainer.logger.info(
            "saved the adapter to %s (merge it with `trainlab merge-lora %s OUT_DIR`)", target, target
        )
