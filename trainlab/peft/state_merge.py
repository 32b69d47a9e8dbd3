"""Fold LoRA updates into base weights in a full state dict — without touching the (possibly sharded) model.

A sharded (FSDP) model cannot merge its adapters in place, but its full state can be gathered tensor by tensor;
these functions turn that state into the plain base model's, as ``save_pretrained`` of the merged model writes it.
"""

from __future__ import annotations

import torch
from torch import nn

from .lora import LoRALinear

PEFT_PREFIX = "base_model.model."


def merged_state_dict_from(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (full tensors keyed like ``model.state_dict()``) with every LoRA update ``scaling · B A`` folded
    into its base weight, adapter tensors dropped and PEFT's wrapper names removed: the base model's keys."""
    state = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            a, b = state.pop(f"{name}.lora_A"), state.pop(f"{name}.lora_B")
            _add_update(state, f"{name}.weight", module.scaling, a, b)
        elif isinstance(getattr(module, "lora_A", None), nn.ModuleDict) and hasattr(module, "base_layer"):
            for adapter in module.lora_A:
                a, b = state.pop(f"{name}.lora_A.{adapter}.weight"), state.pop(f"{name}.lora_B.{adapter}.weight")
                _add_update(state, f"{name}.base_layer.weight", module.scaling[adapter], a, b)
            for suffix in ("weight", "bias"):
                if f"{name}.base_layer.{suffix}" in state:
                    state[f"{name}.{suffix}"] = state.pop(f"{name}.base_layer.{suffix}")
        elif hasattr(module, "modules_to_save") and hasattr(module, "original_module"):  # PEFT's trained heads
            trained, original = f"{name}.modules_to_save.default.", f"{name}.original_module."
            for key in [k for k in state if k.startswith((trained, original))]:
                value = state.pop(key)
                if key.startswith(trained):
                    state[f"{name}.{key[len(trained):]}"] = value
    return {key.removeprefix(PEFT_PREFIX): value for key, value in state.items()}


def _add_update(state: dict[str, torch.Tensor], key: str, scaling: float, a: torch.Tensor, b: torch.Tensor) -> None:
    weight = state[key]
    state[key] = (weight.float() + scaling * (b.float() @ a.float())).to(weight.dtype)


__all__ = ["merged_state_dict_from"]
