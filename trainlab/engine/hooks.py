"""Hooks: named no-op stages of the training loop that extensions override (checkpointing, early stopping...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..registries import HOOKS

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer


class Hook:
    """Base class: override the stages you need. Every stage receives the trainer.

    ``priority``: lower runs first (the checkpoint hook, 40, judges an evaluation before early stopping, 60,
    reads how many evaluations in a row did not improve).
    """

    priority = 50

    def before_train(self, trainer: BaseTrainer) -> None:
        """After set-up (and resume), before the first epoch."""

    def before_epoch(self, trainer: BaseTrainer, epoch: int) -> None:
        """Before the training batches of ``epoch``."""

    def after_train_step(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        """After each optimizer step; ``metrics`` is empty except on logging steps."""

    def after_evaluate(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        """After an evaluation; ``metrics`` are complete over the whole set, the same on every rank."""

    def after_epoch(self, trainer: BaseTrainer, epoch: int, metrics: Mapping[str, float]) -> None:
        """After ``epoch`` (and its evaluation, whose results are in ``metrics``)."""

    def after_train(self, trainer: BaseTrainer) -> None:
        """After the last epoch, or when training stopped early."""

    def on_exception(self, trainer: BaseTrainer, exception: BaseException) -> None:
        """When training is interrupted by an exception (including KeyboardInterrupt)."""


def call_hooks(hooks: list[Hook], stage: str, trainer: BaseTrainer, *args: Any) -> None:
    for hook in hooks:
        getattr(hook, stage)(trainer, *args)


def sort_hooks(hooks: list[Hook]) -> list[Hook]:
    return sorted(hooks, key=lambda hook: hook.priority)


__all__ = ["HOOKS", "Hook", "call_hooks", "sort_hooks"]
