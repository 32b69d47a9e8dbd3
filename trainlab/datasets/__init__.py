"""Datasets, collators and samplers.

Built-in datasets register themselves when the DATASETS registry first misses a name (it imports their
modules then), so importing this package stays light: no Hugging Face `datasets` until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import DatasetBase, IterableDatasetBase
from .collators import PadCollator
from .samplers import LengthGroupedSampler, ShardedEvalSampler

_LAZY = {"StackOverflowDataset": "trainlab.datasets.stackoverflow"}

__all__ = [
    "DatasetBase",
    "IterableDatasetBase",
    "LengthGroupedSampler",
    "PadCollator",
    "ShardedEvalSampler",
    "StackOverflowDataset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainlab.datasets' has no attribute '{name}'")
