"""Optimizers, LR schedulers and losses: every torch one by class name, plus warm-up schedules.

Importing this package fills OPTIMIZERS, SCHEDULERS and LOSSES; the registries do it on their
first lookup, so configs name ``AdamW``, ``OneCycleLR`` or ``CrossEntropyLoss`` without imports.
"""

from .losses import build_loss
from .optimizers import build_optimizer
from .param_groups import NO_DECAY_NAMES, NORM_LAYERS, param_groups, trainable_parameters, unwrap_model
from .schedulers import ScheduledLR, build_scheduler, default_interval
from .warmup import WarmupConstant, WarmupCosine, WarmupLinear, WarmupSchedule

__all__ = [
    "NORM_LAYERS",
    "NO_DECAY_NAMES",
    "ScheduledLR",
    "WarmupConstant",
    "WarmupCosine",
    "WarmupLinear",
    "WarmupSchedule",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "default_interval",
    "param_groups",
    "trainable_parameters",
    "unwrap_model",
]
