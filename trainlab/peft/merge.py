"""Merge a saved adapter into its base model; save the result in Hugging Face layout (`trainlab merge-lora`).

Two adapter layouts are understood:

* a TrainLab LoRA adapter (``trainlab_adapter.json`` + ``trainlab_adapter.safetensors``, see
  :mod:`trainlab.peft.adapter`), whose json records the MODEL section of its base model. Its directory also
  holds a PEFT copy, which is not read here: TrainLab's own files rebuild any TrainLab model;
* a PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``); the base model is
  the MODEL section in ``trainlab_base_model.json`` when TrainLab saved it, otherwise
  ``base_model_name_or_path`` and ``task_type`` from ``adapter_config.json``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from trainlab.errors import ConfigError
from trainlab.registries import MODELS

from .adapter import ADAPTER_CONFIG, load_lora_adapter, read_adapter_config
from .lora import merge_lora_layers
from .peft_format import PEFT_CONFIG


def merge_lora_checkpoint(checkpoint_dir: str, out_dir: str, overwrite: bool = False) -> str:
    """Rebuild the base model of the adapter in ``checkpoint_dir``, merge the adapter, save to ``out_dir``.

    An ``out_dir`` that already holds files is refused unless ``overwrite``: it may be another model.
    """
    if not os.path.isdir(checkpoint_dir):
        raise ConfigError(f"adapter checkpoint '{checkpoint_dir}' is not a directory")
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)) and not overwrite:
        raise ConfigError(f"OUT_DIR {out_dir} already exists and is not empty — choose a new directory "
                          f"(or pass --overwrite to replace what is there)")
    if os.path.isfile(os.path.join(checkpoint_dir, ADAPTER_CONFIG)):
        return _merge_trainlab_adapter(checkpoint_dir, out_dir)
    if os.path.isfile(os.path.join(checkpoint_dir, PEFT_CONFIG)):
        return _merge_peft_adapter(checkpoint_dir, out_dir)
    raise ConfigError(
        f"'{checkpoint_dir}' holds no adapter: expected {PEFT_CONFIG} (a PEFT adapter, MODEL.PEFT) "
        f"or {ADAPTER_CONFIG} (a TrainLab LoRA adapter, MODEL.LORA)"
    )


def _merge_trainlab_adapter(checkpoint_dir: str, out_dir: str) -> str:
    base_cfg = read_adapter_config(checkpoint_dir).get("base_model")
    if not base_cfg:
        raise ConfigError(
            f"the adapter in '{checkpoint_dir}' does not record its base model "
            f"(base_model in {ADAPTER_CONFIG}); "
            f"save it from a model built by TrainLab, or pass base_model= to save_lora_adapter"
        )
    model = _build_base_model(base_cfg)
    load_lora_adapter(model, checkpoint_dir)
    merge_lora_layers(model)
    return model.save_pretrained(out_dir)


def _merge_peft_adapter(checkpoint_dir: str, out_dir: str) -> str:
    from peft import PeftModel

    from .hf_peft import BASE_MODEL_FILE

    base_file = os.path.join(checkpoint_dir, BASE_MODEL_FILE)
    base_cfg = _read_json(base_file) if os.path.isfile(base_file) else _base_from_peft_config(checkpoint_dir)
    wrapper = _build_base_model(base_cfg)
    wrapper.model = PeftModel.from_pretrained(wrapper.model, checkpoint_dir).merge_and_unload()
    return wrapper.save_pretrained(out_dir)


def _build_base_model(cfg: dict[str, Any]) -> Any:
    # The section was written by the model itself (base_model_cfg), so its keys fit the constructor;
    # extra from_pretrained keys such as NUM_LABELS go through the model's **kwargs.
    options = {str(key).lower(): value for key, value in cfg.items() if key != "NAME"}
    return MODELS.get(cfg["NAME"])(**options)


def _base_from_peft_config(checkpoint_dir: str) -> dict[str, Any]:
    from .hf_peft import TASK_TO_PEFT_TASK_TYPE

    adapter_config = _read_json(os.path.join(checkpoint_dir, PEFT_CONFIG))
    base_path = adapter_config.get("base_model_name_or_path")
    if not base_path:
        raise ConfigError(
            f"{PEFT_CONFIG} in '{checkpoint_dir}' has no base_model_name_or_path; "
            f"set it to the base model's directory"
        )
    tasks = {peft_task: task for task, peft_task in TASK_TO_PEFT_TASK_TYPE.items()}
    return {
        "NAME": "TransformersModelWrapper",
        "PRETRAINED": base_path,
        "TASK": tasks.get(adapter_config.get("task_type"), "base"),
    }


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); the adapter checkpoint is damaged") from error
