"""Metrics that accumulate over batches and merge across processes into whole-set values.

Protocol (:class:`Metric`): ``update`` per batch, ``state()`` → CPU tensors that concatenate along
dim 0 across ranks (:func:`merge_states`), ``compute(merged_state)`` → ``{name: float}``.
"""

from .base import Metric, merge_states
from .classification import Accuracy, ClassificationMetrics
from .functional import (
    average_ranks,
    binary_roc_auc,
    class_probabilities,
    confusion_matrix,
    log_loss,
    precision_recall_f1,
    roc_auc,
)
from .language import Perplexity
from .mean import LossMetric, MeanMetric

__all__ = [
    "Accuracy",
    "ClassificationMetrics",
    "LossMetric",
    "MeanMetric",
    "Metric",
    "Perplexity",
    "average_ranks",
    "binary_roc_auc",
    "class_probabilities",
    "confusion_matrix",
    "log_loss",
    "merge_states",
    "precision_recall_f1",
    "roc_auc",
]
