"""ROC and precision-recall curves of one class against the rest, by scikit-learn's definitions: samples with
equal scores form one threshold, the ROC AUC is the trapezoid area under the ROC curve, and the average
precision is ``Σ (R_k − R_{k−1}) · P_k`` over thresholds from the highest down.
"""

from __future__ import annotations

import torch
from torch import Tensor


def threshold_counts(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor]:
    """Cumulative true and false positives ``[T]`` at each distinct score, from the highest score down."""
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positive = scores[order], positive[order].double()
    last_of_tie = torch.ones_like(scores, dtype=torch.bool)
    last_of_tie[:-1] = scores[1:] != scores[:-1]  # tied samples cross the threshold together
    true_positives = positive.cumsum(0)[last_of_tie]
    predicted = torch.arange(1, scores.numel() + 1, dtype=torch.float64)[last_of_tie]
    return true_positives, predicted - true_positives


def roc_curve(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor] | None:
    """False and true positive rates from (0, 0) up; None unless both positives and negatives occur."""
    true_positives, false_positives = threshold_counts(scores, positive)
    if true_positives[-1] == 0 or false_positives[-1] == 0:
        return None
    zero = torch.zeros(1, dtype=torch.float64)
    return (torch.cat([zero, false_positives / false_positives[-1]]),
            torch.cat([zero, true_positives / true_positives[-1]]))


def precision_recall_curve(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor] | None:
    """Recall and precision from the highest threshold down, starting at (0, 1); None without positives."""
    true_positives, false_positives = threshold_counts(scores, positive)
    if true_positives[-1] == 0:
        return None
    recall = true_positives / true_positives[-1]
    precision = true_positives / (true_positives + false_positives)
    return torch.cat([recall.new_zeros(1), recall]), torch.cat([precision.new_ones(1), precision])


def area_under_roc(curve: tuple[Tensor, Tensor] | None) -> float | None:
    """Trapezoid area under a ``roc_curve``."""
    return None if curve is None else torch.trapezoid(curve[1], curve[0]).item()


def average_precision(curve: tuple[Tensor, Tensor] | None) -> float | None:
    """``Σ (R_k − R_{k−1}) · P_k`` over a ``precision_recall_curve``."""
    if curve is None:
        return None
    recall, precision = curve
    return ((recall[1:] - recall[:-1]) * precision[1:]).sum().item()


__all__ = ["area_under_roc", "average_precision", "precision_recall_curve", "roc_curve", "threshold_counts"]
