"""The prototype's import path for BaseTrainer: ``from trainlab.base_trainer import BaseTrainer``."""

from .engine.base_trainer import BaseTrainer

__all__ = ["BaseTrainer"]
