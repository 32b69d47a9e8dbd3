"""Evaluation reports of a classifier: per-class precision, recall, F1, ROC AUC and average precision, the
confusion matrix, and ROC / precision-recall curves, as JSON, Markdown and PNGs.

The input is the gathered state of :class:`~trainlab.metrics.ClassificationMetrics`: float64 probabilities
``[N, C]`` and int64 labels ``[N]``. The curves and their areas are ``trainlab.metrics.curves`` (scikit-learn's
definitions, so the numbers agree with it); the figures are drawn by ``trainlab.report_figures``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError, DataError
from .metrics.curves import area_under_roc, average_precision, precision_recall_curve, roc_curve
from .metrics.functional import confusion_matrix, precision_recall_f1
from .report_figures import plot_confusion, plot_curves

REPORT_FILES = ("report.json", "report.md", "confusion_matrix.png", "roc.png", "precision_recall.png")


# ---------------------------------------------------------------- the numbers
def is_classification_state(state: Mapping[str, Any]) -> bool:
    """Whether an evaluation state holds class probabilities and labels (ClassificationMetrics')."""
    return "probabilities" in state and "labels" in state


def checked_inputs(probabilities: Any, labels: Any,
                   class_names: Sequence[str] | None) -> tuple[Tensor, Tensor, list[str]]:
    """Float64 ``[N, C]``, int64 ``[N]`` and C names; DataError for inputs no report can be made of."""
    probabilities = torch.as_tensor(probabilities, dtype=torch.float64).cpu()
    labels = torch.as_tensor(labels).cpu().to(torch.int64).reshape(-1)
    if probabilities.ndim != 2 or 0 in probabilities.shape or probabilities.shape[0] != labels.numel():
        raise DataError(f"a classification report needs probabilities [N, C] and labels [N] with N > 0, got "
                        f"{list(probabilities.shape)} and {list(labels.shape)}")
    count = probabilities.shape[1]
    if labels.min() < 0 or labels.max() >= count:
        raise DataError(f"labels must lie in [0, {count}) for {count} classes, got values from "
                        f"{labels.min().item()} to {labels.max().item()}; check the dataset's label column")
    if class_names is not None and len(class_names) != count:
        raise ConfigError(f"got {len(class_names)} class names for {count} classes; give one name per class")
    return probabilities, labels, [str(name) for name in class_names] if class_names else [str(c) for c in range(count)]


def _average(rows: list[dict[str, Any]], key: str, weights: Sequence[float]) -> float | None:
    """Mean of ``key`` over the rows where it is defined, weighed by ``weights``; None where none is."""
    pairs = [(row[key], weight) for row, weight in zip(rows, weights) if row[key] is not None]
    total = sum(weight for _, weight in pairs)
    return sum(value * weight for value, weight in pairs) / total if pairs and total > 0 else None


def classification_report(probabilities: Any, labels: Any, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class and averaged precision, recall, F1, support, ROC AUC and average precision, accuracy and the
    confusion matrix (rows: true class, columns: predicted class) of probabilities ``[N, C]`` and labels ``[N]``.

    Precision, recall and F1 are 0 where their denominator is; ROC AUC is None for a class absent from the labels
    (or the only one present), average precision for an absent class. The macro average of precision, recall and
    F1 weighs the classes that occur in the labels or the predictions equally, as ClassificationMetrics does; the
    curve areas are averaged over the classes that have one.
    """
    probabilities, labels, names = checked_inputs(probabilities, labels, class_names)
    predictions = probabilities.argmax(dim=1)
    confusion = confusion_matrix(labels, predictions, len(names))
    hits, predicted, support = confusion.diagonal().double(), confusion.sum(0).double(), confusion.sum(1)
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, hits / support.clamp(min=1), 0.0)
    f1 = torch.where(predicted + support > 0, 2 * hits / (predicted + support).clamp(min=1), 0.0)
    rows = []
    for c, name in enumerate(names):
        scores, positive = probabilities[:, c], labels == c
        rows.append({"name": name, "precision": precision[c].item(), "recall": recall[c].item(), "f1": f1[c].item(),
                     "support": int(support[c]), "roc_auc": area_under_roc(roc_curve(scores, positive)),
                     "average_precision": average_precision(precision_recall_curve(scores, positive))})
    areas = ("roc_auc", "average_precision")
    return {
        "num_samples": labels.numel(),
        "accuracy": (predictions == labels).double().mean().item(),
        "classes": rows,
        "macro_avg": {**precision_recall_f1(confusion, "macro"), "support": labels.numel(),
                      **{key: _average(rows, key, [1.0] * len(rows)) for key in areas}},
        "weighted_avg": {**precision_recall_f1(confusion, "weighted"), "support": labels.numel(),
                         **{key: _average(rows, key, support.tolist()) for key in areas}},
        "confusion_matrix": confusion.tolist(),
    }


def find_class_names(count: int, *sources: Any) -> list[str] | None:
    """The first ``count`` class names a source knows: its ``label_names`` or ``classnames`` (datasets, CLIP
    trainers), or its ``config.id2label`` (Hugging Face models) unless those are the default ``LABEL_i``."""
    for source in sources:
        for attribute in ("label_names", "classnames"):
            names = getattr(source, attribute, None)
            if names and len(names) == count:
                return [str(name) for name in names]
        id2label = getattr(getattr(source, "config", None), "id2label", None)
        if isinstance(id2label, Mapping) and len(id2label) == count:
            names = [str(id2label.get(c, id2label.get(str(c), c))) for c in range(count)]
            if names != [f"LABEL_{c}" for c in range(count)]:
                return names
    return None


# ---------------------------------------------------------------- files
def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def markdown_report(report: Mapping[str, Any]) -> str:
    """The report as Markdown: a table of the classes and averages, then the confusion matrix."""
    header = "| class | precision | recall | F1 | support | ROC AUC | average precision |"
    keys = ("precision", "recall", "f1", "support", "roc_auc", "average_precision")
    lines = ["# Classification report", "",
             f"{report['num_samples']} samples, accuracy {report['accuracy']:.4f}", "",
             header, "|---" + "|---:" * len(keys) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in (row["name"], *(row[k] for k in keys))) + " |"
              for row in report["classes"]]
    for title, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        lines.append(f"| **{title}** | " + " | ".join(_cell(report[key][k]) for k in keys) + " |")
    names = [_cell(row["name"]) for row in report["classes"]]
    lines += ["", "## Confusion matrix", "", "Rows: true class; columns: predicted class.", "",
              "| true \\ predicted | " + " | ".join(names) + " |", "|---" + "|---:" * len(names) + "|"]
    lines += [f"| {name} | " + " | ".join(str(n) for n in counts) + " |"
              for name, counts in zip(names, report["confusion_matrix"])]
    return "\n".join(lines) + "\n"


def check_report_dir(report_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """A report goes into a new or empty folder, or with ``overwrite`` over the files of one that holds some."""
    path = Path(report_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--report {report_dir} is a file; name a folder for the report's files")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"--report {report_dir} already holds files; choose a new or empty folder, or pass "
                          f"--overwrite to replace the report's files there")
    existing = next(folder for folder in (path.absolute(), *path.absolute().parents) if folder.exists())
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"--report {report_dir}: folder {existing} is not writable; choose another folder")


def write_report(state: Mapping[str, Tensor], out_dir: str | os.PathLike,
                 class_names: Sequence[str] | None = None) -> list[Path]:
    """Write ``REPORT_FILES`` of a classification evaluation's state into ``out_dir``; returns their paths."""
    if not is_classification_state(state):
        raise ConfigError(f"--report needs a classification evaluation (class probabilities and labels, as "
                          f"ClassificationMetrics keeps them); this one kept {', '.join(state) or 'no metric state'}"
                          f" — evaluate without --report")
    report = classification_report(state["probabilities"], state["labels"], class_names)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in REPORT_FILES]
    paths[0].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    paths[1].write_text(markdown_report(report), encoding="utf-8")
    plot_confusion(report, paths[2])
    plot_curves(state, report, paths[3], "roc")
    plot_curves(state, report, paths[4], "pr")
    return paths


def write_test_report(trainer: Any) -> list[Path]:
    """RUN_DIR/report/ from the trainer's last evaluation (call it after the test split's), on rank 0.

    Skipped (``[]``) when the evaluation was not a classification or there is no run directory; never raises:
    a report that cannot be written is a warning, the run's results are saved.
    """
    try:
        state = trainer.last_eval_state
        if trainer.rank != 0 or trainer.run_dir is None or not is_classification_state(state):
            return []
        names = find_class_names(state["probabilities"].shape[1], trainer.val_dataset, trainer.train_dataset,
                                 trainer, trainer.unwrapped_model)
        paths = write_report(state, trainer.run_dir / "report", names)
    except Exception as error:  # noqa: BLE001 — training is done; only its report is missing
        trainer.logger.warning("no evaluation report (%s: %s)", type(error).__name__, error)
        return []
    trainer.logger.info("evaluation report: %s", paths[0].parent)
    return paths


__all__ = ["REPORT_FILES", "check_report_dir", "classification_report", "find_class_names", "is_classification_state",
           "markdown_report", "write_report", "write_test_report"]
