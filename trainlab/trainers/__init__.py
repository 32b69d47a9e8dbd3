"""Built-in trainers; the TRAINERS registry imports this package on its first miss."""

from ..engine.base_trainer import BaseTrainer
from .causal_lm import CausalLMTrainer
from .classification import BERTTrainer, LORATrainer
from .clip import PEFTCLIPTrainer

__all__ = ["BERTTrainer", "BaseTrainer", "CausalLMTrainer", "LORATrainer", "PEFTCLIPTrainer"]
