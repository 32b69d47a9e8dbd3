"""Packing: tokenized examples joined end to end into rows of at most ``max_length`` tokens.

A packed row carries ``position_ids`` that restart at 0 for every example. Given ``position_ids`` and no
``attention_mask`` (and no cache), transformers builds a block-diagonal causal mask from the restarts
(eager, sdpa, flex) or passes the sequence boundaries to flash-attention, so no example attends to
another. The first label of each example is -100: no example learns to predict across a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .chat import IGNORE_INDEX


def pack_ranges(lengths: Sequence[int], max_length: int) -> list[tuple[int, int]]:
    """Greedy, in-order packing: ``[start, end)`` example ranges, each totalling at most ``max_length`` tokens.

    Every rank computes the same ranges from the same lengths; an example longer than ``max_length``
    (none, once truncation ran) gets a row of its own.
    """
    ranges, start, filled = [], 0, 0
    for index, length in enumerate(lengths):
        if index > start and filled + length > max_length:
            ranges.append((start, index))
            start, filled = index, 0
        filled += length
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    return ranges


def join_examples(examples: dict[str, list[list[int]]]) -> dict[str, list[int]]:
    """Columns ``input_ids`` and ``labels`` of a few examples → one packed row with ``position_ids``."""
    row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for ids, labels in zip(examples["input_ids"], examples["labels"]):
        row["input_ids"] += ids
        row["labels"] += [IGNORE_INDEX, *labels[1:]]
        row["position_ids"] += range(len(ids))
    return row


class PackedRows(Sequence):
    """A read-only sequence of packed rows over ``examples`` (a ``datasets.Dataset`` with ``input_ids`` and
    ``labels``), joined on access so the tokens stay memory-mapped rather than copied."""

    def __init__(self, examples: Any, ranges: list[tuple[int, int]]) -> None:
        self.examples = examples
        self.ranges = ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        start, end = self.ranges[index]
        return join_examples(self.examples[start:end])


def collate_packed(batch: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad packed rows into ``input_ids``, ``labels`` and ``position_ids`` [batch, longest] with NO
    ``attention_mask``: padding gets label -100 and positions 0, 1, ... of its own, so it is a separate
    "sequence" that no real example attends to."""
    longest = max(len(item["input_ids"]) for item in batch)
    positions = torch.arange(longest).repeat(len(batch), 1)
    for row, item in enumerate(batch):
        size = len(item["position_ids"])
        positions[row, :size] = torch.as_tensor(item["position_ids"])
        positions[row, size:] -= size
    return {"input_ids": pad_rows([item["input_ids"] for item in batch], pad_token_id, longest),
            "labels": pad_rows([item["labels"] for item in batch], IGNORE_INDEX, longest),
            "position_ids": positions}


def pad_rows(rows: Sequence[Sequence[int]], value: int, longest: int) -> torch.Tensor:
    """``rows`` right-padded with ``value`` into a [len(rows), longest] long tensor."""
    out = torch.full((len(rows), longest), value, dtype=torch.long)
    for index, row in enumerate(rows):
        out[index, :len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def padding_fraction(lengths: Sequence[int], batch_size: int) -> float:
    """Share of padding when items of these ``lengths`` are batched in order and padded to each batch's longest."""
    real = padded = 0
    for start in range(0, len(lengths), batch_size):
        chunk = lengths[start:start + batch_size]
        real += sum(chunk)
        padded += max(chunk) * len(chunk)
    return 1 - real / padded if padded else 0.0


def describe_packing(examples: int, lengths: Sequence[int], max_length: int) -> str:
    """One log line: how many examples went into how many rows, and how much of ``max_length`` they fill."""
    fill = sum(lengths) / (len(lengths) * max_length) if lengths else 0.0
    return (f"packed {examples:,} examples into {len(lengths):,} rows of ≤ {max_length:,} tokens "
            f"({fill:.1%} of the rows' {max_length:,} tokens used, {1 - fill:.1%} would be padding at that length)")
