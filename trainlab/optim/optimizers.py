"""Every ``torch.optim`` optimizer in OPTIMIZERS, and building the configured one over a model."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn, optim

from ..errors import ConfigError
from ..registries import OPTIMIZERS
from ..registry import build, match_keywords
from ._introspect import public_classes
from .param_groups import param_groups, trainable_parameters, unwrap_model

for _optimizer in public_classes(optim, optim.Optimizer):
    OPTIMIZERS.register_module(module=_optimizer)


def build_optimizer(model: nn.Module, name: str, kwargs: Mapping[str, Any]) -> optim.Optimizer:
    """Build optimizer ``name`` from OPTIMIZERS over ``model``'s trainable parameters.

    ``weight_decay`` (from ``kwargs``, else the optimizer's default) applies to weights only, see
    :func:`param_groups`. Unless ``kwargs`` sets ``foreach`` or ``fused``, the multi-tensor
    fastest implementation the optimizer has for the parameters' device is switched on: ``fused``,
    else ``foreach``.
    """
    optimizer_class = OPTIMIZERS.get(name)
    options = match_keywords(optimizer_class, kwargs or {}, "OPTIMIZER_KWARGS")
    if "params" in options:
        raise ConfigError(
            f"OPTIMIZER_KWARGS of {name} sets 'params'; remove it, the model's parameters are passed in"
        )
    model = unwrap_model(model)
    trainable = trainable_parameters(model)
    if not trainable:
        raise ConfigError(
            f"{type(model).__name__} has no trainable parameters (requires_grad is False everywhere); "
            f"unfreeze some before building {name}"
        )
    signature = inspect.signature(optimizer_class).parameters
    params: list[Any] = trainable
    if "weight_decay" in signature:
        weight_decay = options.pop("weight_decay", signature["weight_decay"].default)
        params = param_groups(model, weight_decay)
    fast = _multi_tensor_option(signature, options, trainable)
    spec = {"NAME": name, **options}
    if fast.get("fused"):
        try:
            return build({**spec, **fast}, OPTIMIZERS, params, where="OPTIMIZER_KWARGS")
        except RuntimeError:  # this optimizer has no fused kernel for these parameters' device
            fast = {"foreach": True} if "foreach" in signature else {}
    return build({**spec, **fast}, OPTIMIZERS, params, where="OPTIMIZER_KWARGS")


def _multi_tensor_option(
    signature: Mapping[str, inspect.Parameter], options: Mapping[str, Any], params: list[nn.Parameter]
) -> dict[str, bool]:
    # The user's choice wins; differentiable optimizers support neither implementation. Fused kernels
    # exist for CUDA and, for AdamW/Adam/SGD/Adagrad, for CPU too: AdamW's step on MiniLM takes 17 ms fused
    # against 80 ms foreach (and torch's CPU default, for-loop, is slower still).
    if {"foreach", "fused"} & options.keys() or options.get("differentiable"):
        return {}
    if "fused" in signature and all(param.is_floating_point() for param in params):
        return {"fused": True}
    if "foreach" in signature:
        return {"foreach": True}
    return {}
