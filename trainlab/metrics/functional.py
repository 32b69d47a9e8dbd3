"""Classification metric formulas on whole tensors: the math behind :mod:`trainlab.metrics`.

All functions take float64 class probabilities ``[N, C]`` and int64 labels ``[N]`` and never
divide by zero: a ratio with an empty denominator is 0, an undefined ROC AUC is ``nan``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

AVERAGES = ("macro", "weighted", "micro", "binary")


def class_probabilities(logits: Tensor) -> Tensor:
    """Float64 CPU probabilities ``[N, C]`` from logits ``[N, C]``, or ``[N]`` / ``[N, 1]`` single binary logits."""
    logits = logits.detach().to("cpu", torch.float64)
    if logits.ndim == 1 or logits.shape[-1] == 1:
        positive = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1.0 - positive, positive], dim=1)
    return torch.softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)


def confusion_matrix(labels: Tensor, predictions: Tensor, num_classes: int) -> Tensor:
    """Counts ``[C, C]``: row = true class, column = predicted class."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    numerator, denominator = numerator.double(), denominator.double()
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, 1.0), 0.0)


def precision_recall_f1(confusion: Tensor, average: str = "macro") -> dict[str, float]:
    """Precision, recall and F1 from a confusion matrix, averaged over classes.

    ``macro`` weighs every class that occurs in the labels or the predictions equally (as
    scikit-learn does), ``weighted`` weighs classes by their support, ``micro`` pools all
    decisions (equal to accuracy for single-label data), ``binary`` reports class 1.
    """
    true_positives = confusion.diagonal()
    predicted = confusion.sum(dim=0)
    actual = confusion.sum(dim=1)
    if average == "micro":
        pooled = _ratio(true_positives.sum(), confusion.sum()).item()
        return {"precision": pooled, "recall": pooled, "f1": pooled}
    per_class = {
        "precision": _ratio(true_positives, predicted),
        "recall": _ratio(true_positives, actual),
        "f1": _ratio(2 * true_positives, predicted + actual),
    }
    if average == "binary":
        if confusion.shape[0] != 2:
            raise ValueError(
                f"average='binary' needs 2 classes, got {confusion.shape[0]}; use 'macro' or 'weighted'"
            )
        return {name: values[1].item() for name, values in per_class.items()}
    if average == "weighted":
        weights = _ratio(actual, actual.sum().expand_as(actual))
    elif average == "macro":
        present = (predicted + actual) > 0
        weights = present.double() / present.sum().clamp(min=1)
    else:
        raise ValueError(f"unknown average {average!r}; use one of {', '.join(AVERAGES)}")
    return {name: (values * weights).sum().item() for name, values in per_class.items()}


def average_ranks(scores: Tensor) -> Tensor:
    """1-based ranks of ``scores``; tied scores share the mean of the ranks they span."""
    _, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    last_rank = counts.cumsum(dim=0).double()
    return (last_rank - (counts.double() - 1.0) / 2.0)[inverse]


def binary_roc_auc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic; ``nan`` unless both classes occur.

    AUC = (sum of the positives' ranks − P(P+1)/2) / (P·N): the chance that a random positive
    scores above a random negative, ties counting one half.
    """
    num_positive = int(positive.sum())
    num_negative = positive.numel() - num_positive
    if num_positive == 0 or num_negative == 0:
        return math.nan
    rank_sum = average_ranks(scores)[positive].sum().item()
    return (rank_sum - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative)


def roc_auc(probabilities: Tensor, labels: Tensor) -> float:
    """Binary AUC of class 1's probability, or the macro one-vs-rest mean over classes.

    Classes absent from ``labels`` (or present in all of them) have no AUC and are left out of
    the mean; ``nan`` when no class has one.
    """
    if probabilities.shape[1] == 2:
        return binary_roc_auc(probabilities[:, 1], labels == 1)
    per_class = [binary_roc_auc(probabilities[:, c], labels == c) for c in range(probabilities.shape[1])]
    defined = [value for value in per_class if not math.isnan(value)]
    return sum(defined) / len(defined) if defined else math.nan


def log_loss(probabilities: Tensor, labels: Tensor) -> float:
    """Mean negative log-probability of the true class, clipped to [eps, 1 − eps] so it stays finite."""
    eps = torch.finfo(torch.float64).eps
    true_class = probabilities[torch.arange(labels.numel()), labels].clamp(eps, 1.0 - eps)
    return -true_class.log().mean().item()
