"""Weighted running means (e.g. the evaluation loss) that merge exactly across processes."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from ..registries import METRICS
from .base import Metric


@METRICS.register_module()
class MeanMetric(Metric):
    """Weighted mean of the values passed to :meth:`update`, reported under ``name``."""

    def __init__(self, name: str = "mean") -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._weight = 0.0

    def update(self, value: Tensor | float, weight: float = 1.0) -> None:
        """Add ``value`` (a number, or a tensor of per-sample values) with ``weight`` per value.

        Pass a batch's mean loss with ``weight=batch_size`` so the result is the per-sample mean.
        """
        values = torch.as_tensor(value).detach().to("cpu", torch.float64)
        self._total += values.sum().item() * weight
        self._weight += values.numel() * weight

    def state(self) -> dict[str, Tensor]:
        return {
            "total": torch.tensor([self._total], dtype=torch.float64),
            "weight": torch.tensor([self._weight], dtype=torch.float64),
        }

    def _compute(self, state: Mapping[str, Tensor]) -> dict[str, float]:
        weight = state["weight"].sum().item()
        return {self.name: state["total"].sum().item() / weight if weight else math.nan}


@METRICS.register_module()
class LossMetric(MeanMetric):
    """The mean loss over an evaluation, reported as ``loss``."""

    def __init__(self) -> None:
        super().__init__("loss")
