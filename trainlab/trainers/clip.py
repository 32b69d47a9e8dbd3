"""CLIP-style dual encoders (CLIPModel, ChineseCLIPModel) fine-tuned as classifiers over class-name prompts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..engine.base_trainer import BaseTrainer
from ..errors import ConfigError, DataError
from ..metrics import ClassificationMetrics
from ..registries import TRAINERS


@TRAINERS.register_module()
class PEFTCLIPTrainer(BaseTrainer):
    """Trains and evaluates a CLIP-style model as a classifier over all classes, e.g. with PEFT LoRA.

    Every class name is put into ``prompt_template``; an image's logits ``[num_classes]`` are its cosine
    similarities with all class prompts scaled by the model's learned ``logit_scale`` (CLIP's inverse
    temperature), i.e. the model's own ``logits_per_image``. Training minimises TRAINER.LOSS_FN
    (cross-entropy) of these logits and evaluation reports accuracy, macro F1, … over all classes, so the
    trainer trains what it evaluates. The prompts pass through the text tower at every step: LoRA layers
    there (MODEL.PEFT or MODEL.LORA TARGET_MODULES) train, and the text features match the current weights.

    The model must carry its tokenizer (``TransformersModelWrapper`` with ``task: clip``); batches are
    ``{pixel_values, labels}``. A model with adapters also gets them saved alone to RUN_DIR/adapter.

    Args:
        prompt_template: the prompt, with ``{}`` where the class name goes (without ``{}`` the class
            name is appended, as in the prototype's "这张图片描述的内容是" + class name).
        classnames: class names in label order. By default the ``classnames`` of the first dataset the
            trainer loads (the training set; the evaluated set for ``evaluate_dataset``); every other
            dataset must have the same.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        prompt_template: str = "a photo of {}.",
        classnames: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.prompt_template = prompt_template
        self.classnames = list(classnames) if classnames else None
        self._prompt_inputs: dict[str, torch.Tensor] | None = None

    @property
    def prompts(self) -> list[str]:
        """One text per class, in label order."""
        if "{}" in self.prompt_template:
            return [self.prompt_template.replace("{}", name) for name in self.classnames or []]
        return [self.prompt_template + name for name in self.classnames or []]

    def prepare_dataloader(
        self, dataset: Dataset, batch_size: int, collate_fn: Callable | None = None, train: bool = True
    ) -> DataLoader:
        self.match_classnames(dataset)
        return super().prepare_dataloader(dataset, batch_size, collate_fn, train)

    def match_classnames(self, dataset: Dataset) -> None:
        """Adopt ``dataset.classnames`` when none are set yet, else check that the dataset has the same classes."""
        names = getattr(dataset, "classnames", None)
        if self.classnames is None:
            if not names:
                raise ConfigError(
                    f"{type(self).__name__} needs the class names: {type(dataset).__name__} has no "
                    f"`classnames`; list them in TRAINER.CLASSNAMES (in label order)"
                )
            self.classnames = list(names)
        elif names is not None and len(names) != len(self.classnames):
            raise DataError(
                f"{type(dataset).__name__} ({getattr(dataset, 'split', '')}) has {len(names)} classes, but the "
                f"trainer classifies over {len(self.classnames)}; every split must use the same classes"
            )

    def class_prompt_inputs(self) -> dict[str, torch.Tensor]:
        """The tokenized class prompts on the training device, ``[num_classes, prompt_length]`` each."""
        if self._prompt_inputs is None:
            tokenizer = getattr(self.unwrapped_model, "tokenizer", None)
            if tokenizer is None:
                raise ConfigError(
                    f"{type(self).__name__} encodes class prompts with the model's tokenizer, but "
                    f"MODEL.PRETRAINED has none; save the tokenizer (or processor) next to the weights"
                )
            max_length = self.unwrapped_model.config.text_config.max_position_embeddings
            encoded = tokenizer(
                self.prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            self._prompt_inputs = {key: value.to(self.device) for key, value in encoded.items()}
        return self._prompt_inputs

    def forward(self, batch: Any) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of a batch of images against every class prompt."""
        outputs = self.model(pixel_values=batch["pixel_values"], **self.class_prompt_inputs())
        return outputs.logits_per_image

    def build_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(num_classes=len(self.classnames or []) or None)
