"""Split a model's trainable parameters into weight-decayed weights and exempt biases / norm weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..utils.modules import unwrap_model

NO_DECAY_NAMES = ("bias", "LayerNorm", "norm")

# Scaling a normalised activation is not a weight to shrink towards zero, whatever the parameter is called.
NORM_LAYERS = (
    nn.LayerNorm,
    nn.RMSNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad``, each once even when tied."""
    return [param for param in model.parameters() if param.requires_grad]


def param_groups(
    model: nn.Module, weight_decay: float, no_decay: tuple[str, ...] = NO_DECAY_NAMES
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: decayed weights, and a ``weight_decay=0`` group for the rest.

    Exempt from decay: parameters of normalisation layers (:data:`NORM_LAYERS`), every 1-D
    parameter (biases, norm scales of custom layers) and names containing one of ``no_decay``.
    Frozen parameters are left out and empty groups dropped. A model that defines
    ``param_groups(weight_decay)`` itself is asked instead, because the model owns its policy.
    """
    model = unwrap_model(model)
    model_policy = getattr(model, "param_groups", None)
    if callable(model_policy):
        return model_policy(weight_decay)
    decayed: list[nn.Parameter] = []
    exempt: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            if (
                isinstance(module, NORM_LAYERS)
                or param.ndim <= 1
                or any(part in full_name for part in no_decay)
            ):
                exempt.append(param)
            else:
                decayed.append(param)
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
