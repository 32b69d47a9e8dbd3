"""Bridge to Hugging Face PEFT: build adapters from ``MODEL.PEFT``, save them, merge them into the base."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from peft import PEFT_TYPE_TO_CONFIG_MAPPING, PeftModel, PeftType, TaskType, get_peft_model
from torch import nn

from trainlab.errors import ConfigError, did_you_mean

from .params import describe_trainable
from .settings import ALIASES, LoRASettings

logger = logging.getLogger(__name__)

# TransformersModelWrapper's MODEL.TASK -> PEFT task type (which also decides the heads PEFT keeps trainable)
TASK_TO_PEFT_TASK_TYPE = {
    "sequence-classification": "SEQ_CLS",
    "token-classification": "TOKEN_CLS",
    "causal-lm": "CAUSAL_LM",
    "seq2seq": "SEQ_2_SEQ_LM",
}
# written next to PEFT's adapter files: the MODEL section that rebuilds the base model for merging
BASE_MODEL_FILE = "trainlab_base_model.json"
# PEFT field names of settings in the LoRA vocabulary, for other PEFT methods that share them (AdaLoRA...)
_PEFT_FIELD_OF = {
    canonical: peft_name for peft_name, canonical in ALIASES.items() if peft_name != "module_names"
}


def peft_config_from(cfg: Mapping[str, Any], task: str | None = None, model: nn.Module | None = None) -> Any:
    """The ``peft`` config that a ``MODEL.PEFT`` section describes (``LoraConfig`` for ``METHOD: lora``).

    For LoRA, the keys of MODEL.LORA mean what they mean there (see :mod:`trainlab.peft.settings`) and the
    other ``LoraConfig`` fields (BIAS, USE_RSLORA, TASK_TYPE...) pass through. ``model`` lets TRAINABLE be
    checked against its modules.
    """
    options = {str(key).lower(): value for key, value in cfg.items()}
    method = str(options.pop("method", "lora")).upper()
    try:
        config_class = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType(method)]
    except ValueError as error:
        methods = [peft_type.value.lower() for peft_type in PEFT_TYPE_TO_CONFIG_MAPPING]
        raise ConfigError(
            f"MODEL.PEFT.METHOD '{method.lower()}' is not a PEFT method"
            f"{did_you_mean(method.lower(), methods)}; "
            f"choose one of: {', '.join(methods)}"
        ) from error
    fields = {field.name for field in dataclasses.fields(config_class)}
    if "task_type" not in options and task in TASK_TO_PEFT_TASK_TYPE:
        options["task_type"] = TASK_TO_PEFT_TASK_TYPE[task]
    if options.get("task_type") is not None:
        options["task_type"] = _task_type(options["task_type"])
    if method == PeftType.LORA.value:
        if "exclude_modules" in options:
            raise ConfigError(
                "MODEL.PEFT.EXCLUDE_MODULES: use IGNORE_LAYERS (layer indices or name patterns), which skips "
                "the same layers for TrainLab's LoRA and PEFT"
            )
        settings, extras = LoRASettings.split_config(
            options,
            "MODEL.PEFT",
            fields - {"exclude_modules"},
            "peft.LoraConfig fields such as BIAS, USE_RSLORA",
        )
        return settings.to_peft_config(model, **extras)
    options = {
        (_PEFT_FIELD_OF[k] if k in _PEFT_FIELD_OF and _PEFT_FIELD_OF[k] in fields else k): v
        for k, v in options.items()
    }
    unknown = sorted(set(options) - fields)
    if unknown:
        hints = "".join(did_you_mean(key, fields) for key in unknown)
        raise ConfigError(
            f"MODEL.PEFT does not take {', '.join(k.upper() for k in unknown)}{hints} "
            f"({config_class.__name__} fields: {', '.join(sorted(fields))})"
        )
    try:
        return config_class(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"MODEL.PEFT is not a valid {config_class.__name__}: {error}") from error


def _task_type(value: str) -> TaskType:
    try:
        return TaskType(str(value).upper())
    except ValueError as error:
        names = [task_type.value for task_type in TaskType]
        hint = did_you_mean(str(value).upper(), names)
        raise ConfigError(
            f"MODEL.PEFT.TASK_TYPE '{value}' is unknown{hint}; choose one of: {', '.join(names)}"
        ) from error


def apply_peft(model: nn.Module, cfg: Mapping[str, Any], task: str | None = None) -> PeftModel:
    """Wrap the Hugging Face ``model`` in a PEFT model as ``cfg`` (the ``MODEL.PEFT`` section) says.

    Keys (case-insensitive): ``METHOD`` (``lora`` by default, or any PEFT method name); for LoRA the keys of
    MODEL.LORA plus PEFT-only ``LoraConfig`` fields, otherwise that method's config fields. ``TASK_TYPE``
    defaults from ``task``, the wrapper's MODEL.TASK.
    """
    config = peft_config_from(cfg, task, model)
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as error:  # e.g. no module matches the targets
        linears = sorted(
            {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ConfigError(
            f"MODEL.PEFT does not fit {type(model).__name__}: {error} "
            f"Its linear layers end in: {', '.join(linears)}"
        ) from error
    logger.info(
        "PEFT %s: %s", peft_model.peft_config["default"].peft_type.value, describe_trainable(peft_model)
    )
    return peft_model


def save_peft_adapter(model: PeftModel, directory: str, base_model: dict[str, Any] | None = None,
                      state: dict[str, Any] | None = None) -> str:
    """Save the adapter in PEFT's layout, so ``peft.PeftModel.from_pretrained(base, directory)`` loads it.

    ``base_model`` (the MODEL section that rebuilds the base) is stored in ``trainlab_base_model.json`` for
    :func:`trainlab.peft.merge.merge_lora_checkpoint`. ``state``: full tensors keyed like the PEFT model's state
    dict, when the model's own are shards (FSDP).
    """
    if not isinstance(model, PeftModel):
        raise ConfigError(f"save_peft_adapter needs a PEFT model (MODEL.PEFT), got {type(model).__name__}")
    model.save_pretrained(directory, **({"state_dict": state} if state is not None else {}))
    if base_model is not None:
        with open(os.path.join(directory, BASE_MODEL_FILE), "w", encoding="utf-8") as file:
            json.dump(base_model, file, indent=2, default=str)
    return directory


def merge_and_save(model: nn.Module, directory: str, tokenizer: Any = None) -> str:
    """Merge the adapter into the base weights and save a plain Hugging Face model (and ``tokenizer``).

    ``AutoModel*.from_pretrained(directory)`` loads the result without PEFT or TrainLab. ``model`` itself
    is merged in place, so pass a copy to keep training it.
    """
    merged = model.merge_and_unload() if isinstance(model, PeftModel) else model
    merged.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
