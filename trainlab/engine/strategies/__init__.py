"""Strategies: how the model is placed, wrapped, stepped and checkpointed (STRATEGIES registry)."""

from .base import PRECISIONS, DDPStrategy, Strategy, build_strategy, resolve_device

__all__ = ["PRECISIONS", "DDPStrategy", "Strategy", "build_strategy", "resolve_device"]
