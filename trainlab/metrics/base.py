"""The metric protocol: accumulate per batch, export a state that merges across processes, compute."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


class Metric(ABC):
    """A metric accumulated batch by batch whose state merges across processes.

    Every tensor in :meth:`state` concatenates along dim 0 with the same key of other ranks
    (:func:`merge_states`), and :meth:`compute` on the merged state gives exactly what one
    process computes on all the data.
    """

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Add one batch."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every batch seen so far."""

    @abstractmethod
    def state(self) -> dict[str, Tensor]:
        """CPU tensors holding everything :meth:`compute` needs."""

    def compute(self, state: Mapping[str, Tensor] | None = None) -> dict[str, float]:
        """Metric values of ``state`` (a merged one) or, by default, of this process's batches."""
        return self._compute(self.state() if state is None else state)

    @abstractmethod
    def _compute(self, state: Mapping[str, Tensor]) -> dict[str, float]: ...


def merge_states(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate metric states from several processes key by key along dim 0.

    Empty parts (a rank that saw no sample) are skipped, so their shape does not matter.
    """
    if not states:
        raise ValueError("merge_states needs at least one state")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise ValueError(f"cannot merge metric states with keys {sorted(keys)} and {sorted(state)}")
    merged = {}
    for key in states[0]:
        parts = [state[key] for state in states if state[key].numel() > 0]
        merged[key] = torch.cat(parts) if parts else states[0][key]
    return merged
