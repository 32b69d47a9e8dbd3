"""The prototype's import path for DatasetBase and IterableDatasetBase (trainlab.datasets.dataset_base)."""

from .base import DatasetBase, IterableDatasetBase

__all__ = ["DatasetBase", "IterableDatasetBase"]
