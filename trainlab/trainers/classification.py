"""Sequence classification: full fine-tuning (BERTTrainer) and LoRA fine-tuning with a merged export (LORATrainer)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import nn

from ..engine.base_trainer import BaseTrainer
from ..engine.hooks import Hook
from ..metrics import ClassificationMetrics
from ..registries import TRAINERS


def forward_parameters(model: nn.Module) -> set[str] | None:
    """Input names the model's forward declares (looking through wrappers); None when it names none."""
    inner = getattr(model, "model", model)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {name for name, p in inspect.signature(inner.forward).parameters.items() if p.kind in kinds}
    return names or None


@TRAINERS.register_module()
class BERTTrainer(BaseTrainer):
    """Fine-tunes a sequence classifier; reports accuracy, macro precision / recall / F1, ROC-AUC and log loss.

    Works with TrainLab's own BERT (tabular features go in) and with Hugging Face models through
    ``TransformersModelWrapper`` (inputs the model does not declare, such as ``tabular``, are left out).
    """

    def __init__(self, model: nn.Module | None = None, *, num_labels: int | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.num_labels = num_labels

    def custom_setup(self, rank: int, world_size: int) -> None:
        self.model_inputs = forward_parameters(self.model)
        if self.num_labels is None:
            config = getattr(self.model, "config", None)
            self.num_labels = getattr(config, "num_labels", None)

    def forward(self, batch: Any) -> Any:
        if isinstance(batch, Mapping) and self.model_inputs is not None:
            batch = {k: v for k, v in batch.items() if k in self.model_inputs}
        return super().forward(batch)

    def build_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(num_classes=self.num_labels)


class ExportAdapterHook(Hook):
    """After training (the best weights loaded), rank 0 saves the LoRA adapter alone to RUN_DIR/adapter."""

    priority = 45  # after the checkpoint hook restored the best weights

    def after_train(self, trainer: BaseTrainer) -> None:
        if trainer.rank != 0 or not trainer.settings["save"]:
            return
        model = trainer.unwrapped_model
        target = str(trainer.run_dir / "adapter")
        if hasattr(model, "save_adapter"):
            model.save_adapter(target)
        else:
            from ..peft.adapter import save_lora_adapter

            save_lora_adapter(model, target)
        trainer.logger.info("saved the LoRA adapter to %s (merge it with `trainlab merge-lora %s OUT_DIR`)", target, target)


@TRAINERS.register_module()
class LORATrainer(BERTTrainer):
    """BERTTrainer with LoRA: adapters on chosen linear layers, the rest frozen; saves the adapter and the merged model.

    ``lora`` (TRAINER.LORA) has the keys of MODEL.LORA (R, ALPHA, DROPOUT, TARGET_MODULES, TARGET_REGEX,
    IGNORE_LAYERS, TRAINABLE); it is applied in ``custom_setup`` unless the model already has LoRA layers.
    """

    DEFAULT_LORA: ClassVar[dict[str, Any]] = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"], "trainable": ["classifier"]}

    def __init__(self, model: nn.Module | None = None, *, lora: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.lora = {**self.DEFAULT_LORA, **{str(k).lower(): v for k, v in (lora or {}).items()}}

    def custom_setup(self, rank: int, world_size: int) -> None:
        from ..peft.lora import apply_lora_from_config, lora_modules

        super().custom_setup(rank, world_size)
        if not lora_modules(self.model) and not hasattr(getattr(self.model, "model", None), "peft_config"):
            newly_initialized = getattr(self.model, "newly_initialized", [])
            apply_lora_from_config(self.model, self.lora, always_trainable=newly_initialized)

    def default_hooks(self) -> list[Hook]:
        return [*super().default_hooks(), ExportAdapterHook()]


