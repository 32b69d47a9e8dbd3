"""TrainLab: a registry-driven multi-GPU training framework for fine-tuning Hugging Face models.

Importing the package is cheap: torch, transformers and datasets load only when a component needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError, DataError, RegistryError, TrainLabError
from .registries import (
    COLLATORS,
    DATASETS,
    HOOKS,
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    STRATEGIES,
    TRACKERS,
    TRAINERS,
)
from .registry import Registry, build_from_cfg

__version__ = "0.1.0"

_LAZY = {
    "Config": "trainlab.config",
    "load_config": "trainlab.config",
    "BaseTrainer": "trainlab.engine.base_trainer",
    "Hook": "trainlab.engine.hooks",
    "DatasetBase": "trainlab.datasets.base",
    "IterableDatasetBase": "trainlab.datasets.base",
    "add_lora_layers": "trainlab.peft.lora",
    "freeze_model": "trainlab.peft.lora",
    "unfreeze_model": "trainlab.peft.lora",
    "merge_lora_layers": "trainlab.peft.lora",
}

__all__ = [
    "COLLATORS",
    "DATASETS",
    "HOOKS",
    "LOSSES",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "STRATEGIES",
    "TRACKERS",
    "TRAINERS",
    "BaseTrainer",
    "Config",
    "ConfigError",
    "DataError",
    "DatasetBase",
    "Hook",
    "IterableDatasetBase",
    "Registry",
    "RegistryError",
    "TrainLabError",
    "add_lora_layers",
    "build_from_cfg",
    "freeze_model",
    "load_config",
    "merge_lora_layers",
    "unfreeze_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainlab' has no attribute '{name}'")
