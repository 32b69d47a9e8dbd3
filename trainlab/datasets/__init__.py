"""Datasets, collators and samplers; importing this package registers the built-in datasets and collators."""

from .base import DatasetBase, IterableDatasetBase
from .collators import PadCollator
from .samplers import LengthGroupedSampler, ShardedEvalSampler
from .stackoverflow import StackOverflowDataset

__all__ = [
    "DatasetBase",
    "IterableDatasetBase",
    "LengthGroupedSampler",
    "PadCollator",
    "ShardedEvalSampler",
    "StackOverflowDataset",
]
