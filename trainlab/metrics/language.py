"""Token-level language-model metrics that merge exactly across processes."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from ..registries import METRICS
from .base import Metric


@METRICS.register_module()
class Perplexity(Metric):
    """exp(mean negative log-likelihood per predicted token), from per-batch token loss sums and counts."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._nll: list[Tensor] = []
        self._tokens: list[Tensor] = []

    def update(self, token_nll_sum: Tensor, token_count: Tensor) -> None:
        self._nll.append(token_nll_sum.detach().to("cpu", torch.float64).reshape(-1))
        self._tokens.append(token_count.detach().to("cpu", torch.float64).reshape(-1))

    def state(self) -> dict[str, Tensor]:
        empty = torch.empty(0, dtype=torch.float64)
        return {"token_nll_sum": torch.cat(self._nll) if self._nll else empty,
                "token_count": torch.cat(self._tokens) if self._tokens else empty}

    def _compute(self, state: Mapping[str, Tensor]) -> dict[str, float]:
        tokens = state["token_count"].sum().item()
        token_loss = state["token_nll_sum"].sum().item() / tokens if tokens else float("nan")
        return {"token_loss": token_loss, "perplexity": math.exp(token_loss) if tokens else float("nan"),
                "num_tokens": int(tokens)}
