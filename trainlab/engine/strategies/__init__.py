"""Strategies: how the model is placed, wrapped, stepped and checkpointed (the STRATEGIES registry).

``build_strategy`` picks one by TRAINER.STRATEGY (``auto``: ddp on several processes, else single) and passes
it the settings its constructor names, so a new strategy is one new file with a registered class.
"""

from __future__ import annotations

from typing import Any

import torch

from ...registries import STRATEGIES
from ...registry import accepted_keywords, build
from .. import distributed
from .base import PRECISIONS, Strategy, resolve_device
from .ddp import DDPStrategy
from .fsdp import FSDPStrategy


def strategy_name(requested: str, world_size: int) -> str:
    """The registered strategy name for TRAINER.STRATEGY (``auto`` resolved by world size)."""
    if requested == "auto":
        return "ddp" if world_size > 1 else "single"
    return requested


def build_strategy(settings: Any, device: torch.device, name: str | None = None) -> Strategy:
    """The strategy of ``settings`` (or ``name``) for this process, given the settings its constructor accepts."""
    chosen = strategy_name(name or settings.strategy, distributed.get_world_size())
    accepted, _ = accepted_keywords(STRATEGIES.get(chosen))
    options = {key: value for key, value in settings.to_dict().items() if key in accepted and key != "device"}
    return build({"NAME": chosen, **options}, STRATEGIES, where="TRAINER.STRATEGY", device=device)


__all__ = ["PRECISIONS", "STRATEGIES", "DDPStrategy", "FSDPStrategy", "Strategy", "build_strategy", "resolve_device", "strategy_name"]
