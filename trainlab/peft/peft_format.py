"""TrainLab's LoRA in Hugging Face PEFT's on-disk format, so ``peft.PeftModel.from_pretrained(base, path)`` loads it.

``base`` is the model a user loads without TrainLab: the Hugging Face model inside a ``TransformersModelWrapper``
(the wrapper's ``model.`` prefix is dropped from every name), or, for TrainLab's own models, the model built as
the run built it but without LoRA (PEFT adapts any ``nn.Module``). The files are those
``PeftModel.save_pretrained`` writes:

``adapter_model.safetensors``
    ``base_model.model.<layer>.lora_A.weight`` [r, in] and ``base_model.model.<layer>.lora_B.weight`` [out, r]
    per LoRA layer, plus ``base_model.model.<module>.<tensor>`` for every tensor of each module in
    ``modules_to_save``: the outermost modules whose parameters all trained next to LoRA (a head). PEFT swaps
    in whole modules, so a parameter that trained in a partly frozen module brings that whole module.
``adapter_config.json``
    a ``peft.LoraConfig``: the most common ``r`` / ``lora_alpha`` / ``lora_dropout``, with ``rank_pattern`` /
    ``alpha_pattern`` for the layers that differ; ``target_modules`` as the layers' last name parts where
    these pick exactly them, else their full names; ``task_type`` from MODEL.TASK for a Hugging Face base
    (none where that task's PEFT model would leave a LoRA layer out), none for other models.

What PEFT cannot express (a parameter that trained inside a LoRA layer or on the model itself, a module to save
whose name ends another module's) raises ConfigError; the adapter is then saved in TrainLab's format only.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from trainlab.errors import ConfigError

from .lora import LoRALinear, lora_modules
from .params import is_lora_parameter
from .state_merge import PEFT_PREFIX

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
# modules that PEFT's model class for a task type adds to modules_to_save on load (peft_model.py); LoRA layers
# inside a module of that name would then be left out, so such adapters are written without a task type
PEFT_TASK_HEADS = {"SEQ_CLS": ("classifier", "score"), "TOKEN_CLS": ("classifier", "score")}


@dataclasses.dataclass(frozen=True)
class PeftLayout:
    """Where a model's TrainLab LoRA goes in a PEFT adapter of its base model."""

    layers: dict[str, LoRALinear]  # by name in the base
    modules_to_save: list[str]  # by name in the base
    target_modules: list[str]  # PEFT's target_modules, picking exactly ``layers``
    keys: dict[str, str]  # model.state_dict() name -> key in adapter_model.safetensors
    hf_base: bool  # the base is a Hugging Face PreTrainedModel


def peft_layout(model: nn.Module) -> PeftLayout:
    """How the LoRA layers and trained parameters of ``model`` map onto a PEFT adapter; ConfigError if they cannot."""
    layers = lora_modules(model)
    saved = _modules_to_save(model, layers)
    prefix, hf_base = _base_prefix(model)
    keys = {}
    for name in layers:
        for part in ("lora_A", "lora_B"):
            keys[f"{name}.{part}"] = f"{PEFT_PREFIX}{name.removeprefix(prefix)}.{part}.weight"
    for module_name in saved:
        for key in model.get_submodule(module_name).state_dict():
            keys[f"{module_name}.{key}"] = f"{PEFT_PREFIX}{module_name.removeprefix(prefix)}.{key}"
    base_layers = {name.removeprefix(prefix): layer for name, layer in layers.items()}
    module_names = [name.removeprefix(prefix) for name, _ in model.named_modules()]
    modules_to_save = [name.removeprefix(prefix) for name in saved]
    _check_unambiguous(modules_to_save, module_names)
    return PeftLayout(
        layers=base_layers,
        modules_to_save=modules_to_save,
        target_modules=_target_modules(module_names, base_layers),
        keys=keys,
        hf_base=hf_base,
    )


def save_peft_format(model: nn.Module, path: str, base_model: dict[str, Any] | None,
                     tensors: dict[str, torch.Tensor]) -> str:
    """Write the PEFT files (above) of ``model``'s TrainLab LoRA into ``path``; return ``path``.

    ``tensors``: full tensors keyed like ``model.state_dict()`` holding at least ``peft_layout(model).keys``.
    ``base_model``: the MODEL section of the base (``base_model_cfg``), for ``base_model_name_or_path`` and
    ``task_type``.
    """
    layout = peft_layout(model)
    missing = sorted(set(layout.keys) - set(tensors))
    if missing:
        raise ConfigError(f"the PEFT adapter needs the tensors {missing[:5]}, which the state passed lacks")
    weights = {peft_key: tensors[name].detach().contiguous().cpu() for name, peft_key in layout.keys.items()}
    save_file(weights, os.path.join(path, PEFT_WEIGHTS), metadata={"format": "pt"})
    peft_config(layout, base_model).save_pretrained(path)
    return path


def peft_config(layout: PeftLayout, base_model: dict[str, Any] | None) -> Any:
    """The ``peft.LoraConfig`` that rebuilds ``layout``'s layers on the base model."""
    from peft import LoraConfig

    from .hf_peft import TASK_TO_PEFT_TASK_TYPE

    base_model = base_model or {}
    r = _most_common(layer.r for layer in layout.layers.values())
    alpha = _most_common(layer.alpha for layer in layout.layers.values())
    task_type = TASK_TO_PEFT_TASK_TYPE.get(base_model.get("TASK")) if layout.hf_base else None
    if any(_excluded(name, PEFT_TASK_HEADS.get(task_type, ())) for name in layout.layers):
        task_type = None
    return LoraConfig(
        r=r,
        lora_alpha=_plain_number(alpha),
        lora_dropout=_most_common(layer.dropout_p for layer in layout.layers.values()),
        rank_pattern={re.escape(name): layer.r for name, layer in layout.layers.items() if layer.r != r},
        alpha_pattern={
            re.escape(name): _plain_number(layer.alpha)
            for name, layer in layout.layers.items()
            if layer.alpha != alpha
        },
        target_modules=layout.target_modules,
        modules_to_save=layout.modules_to_save or None,
        bias="none",
        fan_in_fan_out=False,
        task_type=task_type,
        base_model_name_or_path=base_model.get("PRETRAINED") if layout.hf_base else None,
        inference_mode=True,
    )


def _modules_to_save(model: nn.Module, layers: dict[str, LoRALinear]) -> list[str]:
    """PEFT's modules_to_save, as described above: they cover every trained parameter besides LoRA's."""
    trained = {name for name, p in model.named_parameters() if p.requires_grad and not is_lora_parameter(name)}
    roots: list[str] = []
    for name, module in model.named_modules():
        if not name or _under(name, roots):
            continue
        own = {f"{name}.{key}" for key, _ in module.named_parameters()}
        if own and own <= trained and not lora_modules(module):
            roots.append(name)
    for param in sorted(trained):
        owner = param.rpartition(".")[0]
        if _under(param, roots):
            continue
        if not owner or owner in layers or lora_modules(model.get_submodule(owner)):
            where = "the model itself" if not owner else "a LoRA layer" if owner in layers else "a module with LoRA layers"
            raise ConfigError(
                f"'{param}' trained, but it belongs to {where}, which PEFT cannot save as a module to save; "
                f"train whole modules next to LoRA (MODEL.LORA.TRAINABLE) for a PEFT copy of the adapter"
            )
        roots = [root for root in roots if not _under(root, [owner])] + [owner]
    return roots


def _check_unambiguous(modules_to_save: list[str], module_names: list[str]) -> None:
    """PEFT picks a module to save by the end of its name: no other module may end in it."""
    for module_name in modules_to_save:
        others = [name for name in module_names if name != module_name and name.endswith(module_name)]
        if others:
            raise ConfigError(
                f"'{module_name}' trained, but PEFT would take {others[:3]} for it as well (it matches modules "
                f"to save by the end of their names)"
            )


def _base_prefix(model: nn.Module) -> tuple[str, bool]:
    """The name prefix of the base model inside ``model`` and whether it is a Hugging Face model: the outermost
    ``PreTrainedModel`` that holds every tensor of ``model`` (``model.`` in TransformersModelWrapper), else ``""``."""
    names = [name for name, _ in (*model.named_parameters(), *model.named_buffers())]
    for name, module in model.named_modules():
        if _is_hf_model(module) and all(_under(key, [name]) for key in names):
            return (f"{name}." if name else ""), True
    return "", False


def _target_modules(module_names: list[str], layers: Iterable[str]) -> list[str]:
    """PEFT's target_modules: the layers' last name parts when these pick no other module, else their full names."""
    layers = set(layers)
    suffixes = sorted({name.rsplit(".", 1)[-1] for name in layers})
    picked = {name for name in module_names if name.rsplit(".", 1)[-1] in suffixes}
    return suffixes if picked == layers else sorted(layers)


def _excluded(name: str, heads: Iterable[str]) -> bool:
    """Whether PEFT leaves the layer ``name`` alone because it lies in a module to save named ``heads``."""
    return any(re.match(rf"(^|.*\.){re.escape(head)}($|\..*)", name) for head in heads)


def _is_hf_model(module: nn.Module) -> bool:
    return any(cls.__name__ == "PreTrainedModel" for cls in type(module).__mro__)


def _under(name: str, modules: list[str]) -> bool:
    """Whether ``name`` is one of ``modules`` or inside one (``""`` holds everything)."""
    return any(not module or name == module or name.startswith(f"{module}.") for module in modules)


def _most_common(values: Iterable[Any]) -> Any:
    return Counter(values).most_common(1)[0][0]


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
