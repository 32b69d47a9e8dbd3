"""The prototype's import path for the LoRA helpers: ``from trainlab.module import add_lora_layers``."""

from ..peft.lora import add_lora_layers, merge_lora_layers
from ..peft.params import freeze_model, unfreeze_model

__all__ = ["add_lora_layers", "freeze_model", "merge_lora_layers", "unfreeze_model"]
