"""Save and load TrainLab LoRA adapters: the LoRA weights (and trained heads) without the base model.

On-disk format, a directory holding TrainLab's two files and PEFT's two:

``trainlab_adapter.safetensors``
    ``<layer>.lora_A`` [r, in] and ``<layer>.lora_B`` [out, r] for every LoRA layer, plus every other
    parameter that was trainable when saved (e.g. ``classifier.weight``), under the model's state-dict names.
``trainlab_adapter.json``
    ``{"format": "trainlab-lora", "version": 1,
       "layers": {"<layer>": {"r": 8, "alpha": 16.0, "dropout": 0.1}, ...},
       "trained_parameters": ["classifier.weight", ...],
       "base_model": {"NAME": "BertForSequenceClassification", "PRETRAINED": "/path", ...} or null}``
    ``base_model`` is the MODEL config section (without LORA/PEFT) that rebuilds the base model; models
    built by TrainLab record it in their ``base_model_cfg`` attribute. ``trainlab merge-lora`` reads these two.
``adapter_config.json``, ``adapter_model.safetensors``
    the same adapter in PEFT's format, for ``peft.PeftModel.from_pretrained(base, path)`` without TrainLab
    (see :mod:`trainlab.peft.peft_format`); left out, with a warning, when PEFT cannot express what trained.

:func:`save_adapter` picks the format: PEFT's own for a model holding a ``peft.PeftModel``, this one for
TrainLab's LoRA.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainlab.errors import ConfigError

from ..utils.modules import unwrap_model
from .lora import LoRALinear, lora_modules
from .params import is_lora_parameter
from .peft_format import PEFT_CONFIG, PEFT_WEIGHTS, peft_layout, save_peft_format

ADAPTER_WEIGHTS = "trainlab_adapter.safetensors"
ADAPTER_CONFIG = "trainlab_adapter.json"
ADAPTER_FORMAT = "trainlab-lora"

logger = logging.getLogger(__name__)


def find_peft_model(model: nn.Module) -> nn.Module | None:
    """The ``peft.PeftModel`` inside ``model`` (or ``model`` itself), found without importing peft."""
    for module in model.modules():
        if any(cls.__name__ == "PeftModel" for cls in type(module).__mro__):
            return module
    return None


def has_adapter(model: nn.Module) -> bool:
    """Whether ``model`` carries an adapter to export: TrainLab LoRA layers or a Hugging Face PEFT model."""
    return bool(lora_modules(model)) or find_peft_model(model) is not None


def adapter_state_names(model: nn.Module) -> set[str]:
    """The entries of ``model.state_dict()`` that :func:`save_adapter` writes: what a sharded run gathers."""
    model = unwrap_model(model)
    trained = {name for name, param in model.named_parameters() if param.requires_grad}
    if find_peft_model(model) is not None:  # PEFT saves modules to save whole, buffers and frozen tensors too
        return trained | {name for name in model.state_dict() if "lora_" in name or ".modules_to_save." in name}
    names = trained | {name for name, _ in model.named_parameters() if is_lora_parameter(name)}
    try:
        return names | set(peft_layout(model).keys)
    except ConfigError:  # no PEFT copy then; save_lora_adapter says why
        return names


def save_adapter(model: nn.Module, path: str, base_model: dict[str, Any] | None = None,
                 state: dict[str, torch.Tensor] | None = None) -> str:
    """Write the adapter of ``model`` to ``path``: PEFT's format for a PEFT model, else TrainLab's and PEFT's (above).

    Either loads with ``peft.PeftModel.from_pretrained(base, path)`` and merges with ``trainlab merge-lora``.
    ``base_model`` defaults to ``model.base_model_cfg``. ``state``: the adapter's
    full tensors keyed like ``model.state_dict()``, when the model's own are shards (FSDP).
    """
    model = unwrap_model(model)
    if base_model is None:
        base_model = getattr(model, "base_model_cfg", None)
    peft_model = find_peft_model(model)
    if peft_model is not None:
        from .hf_peft import save_peft_adapter

        prefix = next(name for name, module in model.named_modules() if module is peft_model)
        peft_state = None if state is None else {
            key.removeprefix(f"{prefix}."): value for key, value in state.items() if not prefix or key.startswith(f"{prefix}.")
        }
        return save_peft_adapter(peft_model, path, base_model=base_model, state=peft_state)
    return save_lora_adapter(model, path, base_model, tensors=state)


def lora_state_dict(model: nn.Module, include_trained: bool = True) -> dict[str, torch.Tensor]:
    """LoRA weights of ``model`` and, with ``include_trained``, every other trainable parameter (heads)."""
    return {
        name: param.detach()
        for name, param in model.named_parameters()
        if is_lora_parameter(name) or (include_trained and param.requires_grad)
    }


def save_lora_adapter(model: nn.Module, path: str, base_model: dict[str, Any] | None = None,
                      tensors: dict[str, torch.Tensor] | None = None) -> str:
    """Write the adapter of ``model`` to the directory ``path`` (TrainLab's files and PEFT's, above); return ``path``.

    ``base_model`` defaults to ``model.base_model_cfg``, which TrainLab's models set. ``tensors``: the
    adapter's full tensors when the model's own are shards.
    """
    layers = lora_modules(model)
    if not layers:
        raise ConfigError(
            f"{type(model).__name__} has no LoRA layers to save; add them with MODEL.LORA first"
        )
    if any(layer.merged for layer in layers.values()):
        raise ConfigError("cannot save a LoRA adapter while it is merged; call unmerge_lora(model) first")
    source = tensors if tensors is not None else model.state_dict()
    wanted = lora_state_dict(model)
    tensors = {name: tensor.contiguous().cpu() for name, tensor in source.items() if name in wanted}
    meta = {
        "format": ADAPTER_FORMAT,
        "version": 1,
        "layers": {name: {"r": m.r, "alpha": m.alpha, "dropout": m.dropout_p} for name, m in layers.items()},
        "trained_parameters": sorted(name for name in tensors if not is_lora_parameter(name)),
        "base_model": base_model if base_model is not None else getattr(model, "base_model_cfg", None),
    }
    os.makedirs(path, exist_ok=True)
    save_file(tensors, os.path.join(path, ADAPTER_WEIGHTS), metadata={"format": "pt"})
    with open(os.path.join(path, ADAPTER_CONFIG), "w", encoding="utf-8") as file:
        json.dump(meta, file, indent=2, default=str)
    _save_peft_copy(model, path, meta["base_model"], source)
    return path


def _save_peft_copy(model: nn.Module, path: str, base_model: dict[str, Any] | None,
                    state: dict[str, torch.Tensor]) -> None:
    try:
        save_peft_format(model, path, base_model, state)
    except ConfigError as error:
        for name in (PEFT_CONFIG, PEFT_WEIGHTS):  # never leave a stale copy of another adapter beside this one
            if os.path.exists(os.path.join(path, name)):
                os.remove(os.path.join(path, name))
        logger.warning("no PEFT copy of the adapter in %s (trainlab merge-lora still reads it): %s", path, error)


def read_adapter_config(path: str) -> dict[str, Any]:
    """The ``trainlab_adapter.json`` of the adapter directory ``path``, checked."""
    config_file = os.path.join(path, ADAPTER_CONFIG)
    if not os.path.isfile(config_file) or not os.path.isfile(os.path.join(path, ADAPTER_WEIGHTS)):
        raise ConfigError(
            f"'{path}' is not a TrainLab LoRA adapter: it needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS} "
            f"(written by save_lora_adapter)"
        )
    try:
        with open(config_file, encoding="utf-8") as file:
            meta = json.load(file)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{config_file} is not valid JSON ({error}); the adapter is damaged") from error
    if not isinstance(meta, dict) or meta.get("format") != ADAPTER_FORMAT or not meta.get("layers"):
        raise ConfigError(f"{config_file} is not a '{ADAPTER_FORMAT}' adapter description")
    return meta


def load_lora_adapter(model: nn.Module, path: str) -> nn.Module:
    """Load the adapter in ``path`` into ``model``, adding its LoRA layers first where missing."""
    meta = read_adapter_config(path)
    existing = lora_modules(model)
    for name, settings in meta["layers"].items():
        if name in existing:
            continue
        try:
            layer = model.get_submodule(name)
        except AttributeError as error:
            raise ConfigError(
                f"adapter '{path}' has a LoRA layer '{name}' that {type(model).__name__} lacks; "
                f"it was saved from a different model"
            ) from error
        if type(layer) is not nn.Linear:
            raise ConfigError(
                f"adapter '{path}' targets '{name}', which is a {type(layer).__name__}, not nn.Linear"
            )
        model.set_submodule(name, LoRALinear(layer, settings["r"], settings["alpha"], settings["dropout"]))
    tensors = load_file(os.path.join(path, ADAPTER_WEIGHTS))
    unknown = sorted(set(tensors) - set(model.state_dict()))
    if unknown:
        raise ConfigError(
            f"adapter '{path}' holds weights {unknown[:5]} that {type(model).__name__} does not have; "
            f"it was saved from a different model"
        )
    try:
        model.load_state_dict(tensors, strict=False)
    except RuntimeError as error:
        raise ConfigError(f"adapter '{path}' does not fit {type(model).__name__}: {error}") from error
    return model
