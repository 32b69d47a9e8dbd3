"""Sequence classification: full fine-tuning (BERTTrainer) and LoRA fine-tuning with a merged export (LORATrainer)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from ..engine.adapter_hook import has_adapter
from ..engine.base_trainer import BaseTrainer
from ..errors import ConfigError
from ..metrics import ClassificationMetrics
from ..peft.lora import apply_lora_from_config
from ..peft.settings import LoRASettings
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

    def __init__(
        self, model: nn.Module | None = None, *, num_labels: int | None = None, **kwargs: Any
    ) -> None:
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


@TRAINERS.register_module()
class LORATrainer(BERTTrainer):
    """BERTTrainer with LoRA: adapters on chosen linear layers, the rest frozen; saves adapter and merged model.

    LoRA comes from MODEL.LORA (the model is built with its adapters). Without it, ``custom_setup`` adds
    LoRA with the MODEL.LORA defaults (r 8, alpha 16 on query/value, the classifier trained), as the
    prototype's LoRA trainer did. ``lora`` (TRAINER.LORA) is the deprecated place of the same section.
    """

    def __init__(
        self, model: nn.Module | None = None, *, lora: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model, **kwargs)
        self.lora_section_given = lora is not None
        self.lora = LoRASettings.from_config(lora, section="TRAINER.LORA")

    def custom_setup(self, rank: int, world_size: int) -> None:
        super().custom_setup(rank, world_size)
        if self.lora_section_given and rank == 0:
            self.logger.warning("TRAINER.LORA is deprecated: move the section to MODEL.LORA (same keys)")
        if has_adapter(self.model):
            if self.lora_section_given:
                raise ConfigError(
                    "TRAINER.LORA is set but the model already has adapters (MODEL.LORA / MODEL.PEFT); "
                    "keep one section, MODEL.LORA"
                )
            return
        apply_lora_from_config(
            self.model, self.lora, always_trainable=getattr(self.model, "newly_initialized", [])
        )
