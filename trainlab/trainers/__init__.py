"""Built-in trainers; the TRAINERS registry imports this package on its first miss."""

from ..engine.base_trainer import BaseTrainer
from .classification import BERTTrainer, LORATrainer

__all__ = ["BERTTrainer", "BaseTrainer", "LORATrainer"]
