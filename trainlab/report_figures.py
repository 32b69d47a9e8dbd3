"""The figures of a classification report: the confusion matrix and one-vs-rest ROC and precision-recall
curves, drawn off-screen with matplotlib (imported only when a figure is made)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .metrics.curves import precision_recall_curve, roc_curve

MAX_LEGEND = 20  # curves beyond this many are drawn without a legend: it would hide the plot
MAX_ANNOTATED = 30  # confusion matrices up to this many classes show their counts in the cells


def new_figure(size: tuple[float, float]) -> Any:
    """A matplotlib figure drawn off-screen (Agg), without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_confusion(report: Mapping[str, Any], path: Path) -> None:
    """Counts coloured by their share of the true class's samples (the row), so small classes show too."""
    counts = torch.tensor(report["confusion_matrix"], dtype=torch.float64)
    names = [row["name"] for row in report["classes"]]
    side = min(max(4.0, 0.45 * len(names) + 2.5), 24.0)
    figure = new_figure((side + 1.0, side))
    axes = figure.add_subplot()
    shares = counts / counts.sum(1, keepdim=True).clamp(min=1)
    image = axes.imshow(shares.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    axes.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted class", ylabel="true class",
             title=f"Confusion matrix (accuracy {report['accuracy']:.3f})")
    axes.set_xticklabels(names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    axes.set_yticklabels(names)
    if len(names) <= MAX_ANNOTATED:
        for true, row in enumerate(counts.tolist()):
            for predicted, count in enumerate(row):
                axes.text(predicted, true, f"{count:.0f}", ha="center", va="center", fontsize="small",
                          color="white" if shares[true, predicted] > 0.5 else "black")
    figure.savefig(path)


def curve_classes(count: int) -> list[int]:
    """The classes with a curve of their own: the positive class of a binary task, else every class."""
    return [1] if count == 2 else list(range(count))


def draw_curves(axes: Any, state: Mapping[str, Tensor], report: Mapping[str, Any], kind: str) -> int:
    """One ``kind`` (roc or pr) curve per class that has one, labelled with its area; returns how many."""
    probabilities, labels = state["probabilities"].double().cpu(), state["labels"].long().cpu().reshape(-1)
    if kind == "roc":
        make, key, area, style = roc_curve, "roc_auc", "AUC", "default"
    else:  # P_k holds over (R_{k-1}, R_k]: the area under these steps is the average precision
        make, key, area, style = precision_recall_curve, "average_precision", "AP", "steps-pre"
    drawn = 0
    for c in curve_classes(probabilities.shape[1]):
        curve = make(probabilities[:, c], labels == c)
        if curve is not None:
            row = report["classes"][c]
            axes.plot(curve[0].numpy(), curve[1].numpy(), drawstyle=style, label=f"{row['name']} ({area} {row[key]:.3f})")
            drawn += 1
    return drawn


def plot_curves(state: Mapping[str, Tensor], report: Mapping[str, Any], path: Path, kind: str) -> None:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves, one per class against the rest."""
    figure = new_figure((6.4, 5.2))
    axes = figure.add_subplot()
    drawn = draw_curves(axes, state, report, kind)
    if kind == "roc":
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)  # a classifier that guesses
        axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, one class against the rest")
    else:
        axes.set(xlabel="recall", ylabel="precision", title="Precision-recall, one class against the rest")
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    if 0 < drawn <= MAX_LEGEND:
        axes.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")
    figure.savefig(path)


__all__ = ["curve_classes", "draw_curves", "new_figure", "plot_confusion", "plot_curves"]
