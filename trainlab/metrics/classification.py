"""Classification metrics that keep every prediction, so merged ranks give whole-set values."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..registries import METRICS
from .base import Metric
from .functional import (
    AVERAGES,
    class_probabilities,
    confusion_matrix,
    log_loss,
    precision_recall_f1,
    roc_auc,
)

NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


@METRICS.register_module()
class ClassificationMetrics(Metric):
    """Accuracy, precision, recall, F1, ROC AUC and log loss of a single-label classifier.

    Keeps the class probabilities (float64, CPU) and labels of every sample: ROC AUC needs all
    scores, and a pooled state makes the merged result exact rather than an average of ranks.

    Args:
        num_classes: checked against the logits' width; inferred from it when ``None``.
        average: how precision, recall and F1 combine classes: ``macro`` (default),
            ``weighted`` (by support), ``micro`` or ``binary`` (class 1 of two).
    """

    def __init__(self, num_classes: int | None = None, average: str = "macro") -> None:
        if average not in AVERAGES:
            raise ConfigError(
                f"ClassificationMetrics got average={average!r}; use one of {', '.join(AVERAGES)}"
            )
        if average == "binary" and num_classes not in (None, 2):
            raise ConfigError(f"average='binary' needs 2 classes, got num_classes={num_classes}; use 'macro'")
        self.num_classes = num_classes
        self.average = average
        self.reset()

    def reset(self) -> None:
        self._probabilities: list[Tensor] = []
        self._labels: list[Tensor] = []

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Add a batch: logits ``[N, C]`` (or ``[N]`` binary logits) and labels ``[N]``."""
        probabilities = class_probabilities(logits)
        labels = labels.detach().to("cpu", torch.int64).reshape(-1)
        if probabilities.shape[0] != labels.shape[0]:
            raise ValueError(f"got {probabilities.shape[0]} rows of logits but {labels.shape[0]} labels")
        if self.num_classes is not None and probabilities.shape[1] != self.num_classes:
            raise ValueError(f"expected logits for {self.num_classes} classes, got {probabilities.shape[1]}")
        self._probabilities.append(probabilities)
        self._labels.append(labels)

    def state(self) -> dict[str, Tensor]:
        if not self._probabilities:
            width = self.num_classes or 0
            return {
                "probabilities": torch.empty(0, width, dtype=torch.float64),
                "labels": torch.empty(0, dtype=torch.int64),
            }
        return {"probabilities": torch.cat(self._probabilities), "labels": torch.cat(self._labels)}

    def _compute(self, state: Mapping[str, Tensor]) -> dict[str, float]:
        probabilities, labels = state["probabilities"], state["labels"]
        num_samples = labels.numel()
        if num_samples == 0:
            return {**dict.fromkeys(NAMES, math.nan), "num_samples": 0}
        num_classes = probabilities.shape[1]
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DataError(
                f"labels must lie in [0, {num_classes}) for {num_classes}-class logits, "
                f"got values from {labels.min().item()} to {labels.max().item()}; "
                f"check the dataset's label column"
            )
        predictions = probabilities.argmax(dim=1)
        confusion = confusion_matrix(labels, predictions, num_classes)
        return {
            "accuracy": (predictions == labels).double().mean().item(),
            **precision_recall_f1(confusion, self.average),
            "roc_auc": roc_auc(probabilities, labels),
            "log_loss": log_loss(probabilities, labels),
            "num_samples": num_samples,
        }


@METRICS.register_module()
class Accuracy(Metric):
    """Top-k accuracy from counts only: a light metric for large evaluation sets."""

    def __init__(self, top_k: int = 1) -> None:
        if top_k < 1:
            raise ConfigError(f"Accuracy needs top_k ≥ 1, got {top_k}")
        self.top_k = top_k
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Add a batch: logits ``[N, C]`` (or ``[N]`` binary logits) and labels ``[N]``."""
        probabilities = class_probabilities(logits)
        labels = labels.detach().to("cpu", torch.int64).reshape(-1, 1)
        top = probabilities.topk(min(self.top_k, probabilities.shape[1]), dim=1).indices
        self._correct += int((top == labels).any(dim=1).sum())
        self._total += labels.shape[0]

    def state(self) -> dict[str, Tensor]:
        return {"correct": torch.tensor([self._correct]), "total": torch.tensor([self._total])}

    def _compute(self, state: Mapping[str, Tensor]) -> dict[str, float]:
        total = int(state["total"].sum())
        accuracy = int(state["correct"].sum()) / total if total else math.nan
        return {"accuracy": accuracy, "num_samples": total}
