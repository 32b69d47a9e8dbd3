"""Parameter-efficient fine-tuning: TrainLab's own LoRA (any nn.Linear) and a bridge to Hugging Face PEFT.

Both read one vocabulary, :class:`LoRASettings` (the ``MODEL.LORA`` section). The PEFT bridge
(:mod:`trainlab.peft.hf_peft`) and adapter merging (:mod:`trainlab.peft.merge`) import the ``peft`` /
``transformers`` libraries, so they are imported from their modules, not from here.
"""

from .adapter import (
    adapter_state_names,
    has_adapter,
    load_lora_adapter,
    lora_state_dict,
    read_adapter_config,
    save_adapter,
    save_lora_adapter,
)
from .lora import (
    LoRALinear,
    add_lora_layers,
    apply_lora_from_config,
    lora_modules,
    merge_lora,
    merge_lora_layers,
    merged_state_dict,
    unmerge_lora,
)
from .params import count_parameters, freeze_model, freeze_parameters, mark_trainable, unfreeze_model
from .peft_format import save_peft_format
from .settings import LoRASettings

__all__ = [
    "LoRALinear",
    "LoRASettings",
    "adapter_state_names",
    "add_lora_layers",
    "apply_lora_from_config",
    "count_parameters",
    "freeze_model",
    "freeze_parameters",
    "has_adapter",
    "load_lora_adapter",
    "lora_modules",
    "lora_state_dict",
    "mark_trainable",
    "merge_lora",
    "merge_lora_layers",
    "merged_state_dict",
    "read_adapter_config",
    "save_adapter",
    "save_lora_adapter",
    "save_peft_format",
    "unfreeze_model",
    "unmerge_lora",
]
