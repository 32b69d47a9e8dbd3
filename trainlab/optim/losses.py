"""Every ``torch.nn`` loss in LOSSES, and building the configured one."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.modules import loss as torch_losses

from ..registries import LOSSES
from ..registry import build, match_keywords
from ._introspect import public_classes

for _loss in public_classes(torch_losses, nn.Module):
    # The suffix keeps helpers (Linear, PairwiseDistance) and deprecated aliases (NLLLoss2d) out.
    if _loss.__name__.endswith("Loss"):
        LOSSES.register_module(module=_loss)


def build_loss(name: str | None, kwargs: Mapping[str, Any]) -> nn.Module | None:
    """Build loss ``name`` from LOSSES with ``kwargs``; ``None`` or ``""`` means the model computes its own loss.

    Lists given for tensor arguments (``weight``, ``pos_weight``) become float tensors, so class
    weights can be written in YAML. Move the returned module to the training device.
    """
    if not name:
        return None
    loss_class = LOSSES.get(name)
    kwargs = match_keywords(loss_class, kwargs or {}, "LOSS_KWARGS")
    return build({"NAME": name, **_lists_to_tensors(loss_class, kwargs)}, LOSSES, where="LOSS_KWARGS")


def _lists_to_tensors(loss_class: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(loss_class).parameters
    converted = dict(kwargs)
    for key, value in kwargs.items():
        annotation = str(parameters[key].annotation) if key in parameters else ""
        if isinstance(value, (list, tuple)) and "Tensor" in annotation:
            converted[key] = torch.tensor(value, dtype=torch.float32)
    return converted
