"""TrainLab's own LoRA: wrap ``nn.Linear`` layers of any model, train the low-rank update, merge it back."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError
from trainlab.utils.modules import unwrap_model

from .params import (
    count_parameters,
    describe_trainable,
    freeze_all_but_lora,
    freeze_model,
    mark_trainable,
    matches_any,
    module_matches,
    unfreeze_model,
)
from .settings import LoRASettings

__all__ = [
    "LoRALinear",
    "LoRASettings",
    "add_lora_layers",
    "apply_lora_from_config",
    "count_parameters",
    "freeze_model",
    "lora_modules",
    "mark_trainable",
    "merge_lora",
    "merge_lora_layers",
    "merged_state_dict",
    "unfreeze_model",
    "unmerge_lora",
]

logger = logging.getLogger(__name__)


class LoRALinear(nn.Module):
    """A linear layer plus a trainable low-rank update (Hu et al., 2021).

    ``y = W x + b + (alpha / r) · B A dropout(x)`` with ``A: [r, in]`` (Kaiming-uniform) and
    ``B: [out, r]`` (zeros), so a freshly wrapped layer computes exactly what the original did.
    ``W`` and ``b`` are the original layer's own parameters, so state-dict names of the base weights
    do not change (``query.weight``); the update adds ``query.lora_A`` and ``query.lora_B``.

    ``merge()`` folds ``(alpha / r) · B A`` into ``W`` in place and ``unmerge()`` takes it out again;
    while merged the LoRA path is skipped, so outputs are unchanged.
    """

    def __init__(self, linear: nn.Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0) -> None:
        super().__init__()
        if r <= 0:
            raise ConfigError(f"LoRA rank r must be a positive integer, got {r}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.r, self.alpha, self.dropout_p = int(r), float(alpha), float(dropout)
        self.scaling = self.alpha / self.r
        self.weight = linear.weight
        self.bias = linear.bias
        factory = {"device": linear.weight.device, "dtype": linear.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) · B A`` with the shape of ``weight``: [out, in]."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if self.merged:
            return out
        return out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.weight.add_(self.delta_weight())
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.weight.sub_(self.delta_weight())
            self.merged = False

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` that computes what this layer computes, the update merged into its weight."""
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(self.weight if self.merged else self.weight + self.delta_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        linear.weight.requires_grad_(self.weight.requires_grad)
        if self.bias is not None:
            linear.bias.requires_grad_(self.bias.requires_grad)
        return linear

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
            f"alpha={self.alpha:g}, dropout={self.dropout_p:g}, merged={self.merged}"
        )


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    """All LoRA layers of ``model`` by their dotted names."""
    return {name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)}


def add_lora_layers(
    model: nn.Module,
    module_names: Iterable[str] = ("query", "value"),
    r: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.1,
    ignore_layers: Iterable[int | str] = (),
    *,
    target_regex: str | None = None,
) -> list[str]:
    """Replace the matching ``nn.Linear`` layers of ``model`` by :class:`LoRALinear`; return their names.

    A layer is a target when ``target_regex`` fully matches its dotted name, or (without a regex) when it
    is one of ``module_names`` or ends in one (``"query"`` matches ``encoder.layer.0.attention.self.query``).
    ``ignore_layers`` skips layers by index (``0`` skips everything under ``encoder.layer.0``, as in the
    prototype) or by name pattern. Parameters keep their ``requires_grad``; see :func:`freeze_model`.
    A DistributedDataParallel-wrapped ``model`` is changed inside its ``module`` (names carry no ``module.``).
    """
    if model is not unwrap_model(model):
        logger.warning(
            "add_lora_layers on a wrapped (DistributedDataParallel) model: the wrapper was built before "
            "the LoRA weights existed and will not average their gradients; add LoRA in custom_setup, "
            "before wrapping"
        )
        model = unwrap_model(model)
    module_names = _as_list(module_names)
    ignore_layers = [str(layer) for layer in _as_list(ignore_layers)]  # an index matches a name component
    pattern = re.compile(target_regex) if target_regex else None
    linears = [(name, module) for name, module in model.named_modules() if type(module) is nn.Linear]
    targets = [
        (name, module)
        for name, module in linears
        if (pattern.fullmatch(name) if pattern else any(module_matches(name, p) for p in module_names))
        and not matches_any(name, ignore_layers)
    ]
    if not targets:
        wanted = f"target_regex '{target_regex}'" if pattern else f"target modules {module_names}"
        suffixes = sorted({name.rsplit(".", 1)[-1] for name, _ in linears})
        raise ConfigError(
            f"LoRA {wanted} match no nn.Linear layer of {type(model).__name__} (after ignore_layers "
            f"{ignore_layers}). Its linear layers end in: {', '.join(suffixes) or '(none)'}"
        )
    for name, module in targets:
        model.set_submodule(name, LoRALinear(module, r=r, alpha=lora_alpha, dropout=lora_dropout))
    return [name for name, _ in targets]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight in place (undo with :func:`unmerge_lora`)."""
    for module in lora_modules(model).values():
        module.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Take every merged LoRA update out of its base weight again."""
    for module in lora_modules(model).values():
        module.unmerge()
    return model


def merge_lora_layers(model: nn.Module, module_names: Iterable[str] | None = None) -> nn.Module:
    """Replace LoRA layers (all, or those matching ``module_names``) by ``nn.Linear`` with merged weights.

    The result has the original architecture and state-dict names, so it saves in the base model's layout.
    A DistributedDataParallel-wrapped ``model`` is merged inside its ``module`` (the prototype then saved
    ``model.module.state_dict()``); ``model`` itself is returned.
    """
    inner = unwrap_model(model)
    patterns = None if module_names is None else _as_list(module_names)
    for name, module in lora_modules(inner).items():
        if patterns is None or matches_any(name, patterns):
            inner.set_submodule(name, module.to_linear())
    return model


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` as if all LoRA layers were merged, without LoRA keys; ``model`` is unchanged."""
    state = model.state_dict()
    for name, module in lora_modules(model).items():
        state.pop(f"{name}.lora_A")
        state.pop(f"{name}.lora_B")
        if not module.merged:
            state[f"{name}.weight"] = (module.weight + module.delta_weight()).detach()
    return state


def apply_lora_from_config(
    model: nn.Module,
    cfg: Mapping[str, Any] | LoRASettings | None,
    always_trainable: Iterable[str] = (),
) -> nn.Module:
    """Add LoRA as a ``MODEL.LORA`` section says (keys in :mod:`trainlab.peft.settings`) and freeze the rest.

    What trains: the LoRA weights, the TRAINABLE patterns (by default the classifier, if any) and
    ``always_trainable``: parameters the model needs trained whatever the config says, such as a head the
    checkpoint did not contain.
    """
    settings = cfg if isinstance(cfg, LoRASettings) else LoRASettings.from_config(cfg)
    inner = unwrap_model(model)
    targets = add_lora_layers(inner, **settings.layer_arguments())
    # not freeze_model: its prototype meaning keeps any "classifier" training, which TRAINABLE decides here
    freeze_all_but_lora(inner)
    mark_trainable(inner, settings.trainable_patterns(inner), key=f"{settings.section}.TRAINABLE")
    required = set(always_trainable)
    for name, param in inner.named_parameters():
        if name in required:
            param.requires_grad_(True)
    logger.info(
        "LoRA r=%s alpha=%g on %d layers; %s",
        settings.r,
        settings.alpha,
        len(targets),
        describe_trainable(inner),
    )
    return model


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, int)) else list(value)
