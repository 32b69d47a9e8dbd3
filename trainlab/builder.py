"""The prototype's import path for the registries and `build_from_cfg`, kept for existing code."""

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
    "Registry",
    "build_from_cfg",
]
