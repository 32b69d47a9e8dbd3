"""Collators: turn a list of dataset items into a batch of tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registries import COLLATORS

TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@COLLATORS.register_module()
class PadCollator:
    """Pads variable-length integer sequences to the longest one in the batch and stacks the rest.

    Keys in ``keys_to_pad`` are padded (``input_ids`` with ``pad_token_id``, every other key with 0)
    into a ``[batch, longest]`` long tensor; numbers and lists of numbers become tensors (floats
    float32, integers int64); tensors are stacked; anything else (strings) stays a list.

    Args:
        pad_to_multiple_of: round the padded length up to a multiple of this (tensor-core friendly).
        padding_side: ``"right"`` for encoders, ``"left"`` for decoder-only generation.
    """

    def __init__(
        self,
        pad_token_id: int = 0,
        pad_to_multiple_of: int | None = None,
        keys_to_pad: Sequence[str] = TOKEN_KEYS,
        padding_side: str = "right",
    ) -> None:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.keys_to_pad = tuple(keys_to_pad)
        self.padding_side = padding_side

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {}
        for key in items[0]:
            values = [item[key] for item in items]
            if key in self.keys_to_pad:
                pad_value = self.pad_token_id if key == "input_ids" else 0
                batch[key] = self.pad(values, pad_value)
            else:
                batch[key] = _stack(values)
        return batch

    def pad(self, sequences: Sequence[Sequence[int]], pad_value: int) -> torch.Tensor:
        """Pad ``sequences`` to the longest (rounded up to ``pad_to_multiple_of``): ``[batch, length]``."""
        length = max(len(sequence) for sequence in sequences)
        if self.pad_to_multiple_of:
            length = math.ceil(length / self.pad_to_multiple_of) * self.pad_to_multiple_of
        padded = torch.full((len(sequences), length), pad_value, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            values = torch.as_tensor(sequence, dtype=torch.long)
            if self.padding_side == "right":
                padded[row, : len(values)] = values
            else:
                padded[row, length - len(values) :] = values
        return padded


def _stack(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, (bool, int, float)) or (
        isinstance(first, (list, tuple)) and all(isinstance(v, (bool, int, float)) for v in first)
    ):
        # torch.tensor keeps ints as int64 and turns Python floats into the default float32.
        return torch.tensor(values)
    return values
