"""Data loaders for training (shuffled, sharded, resumable mid-epoch) and evaluation (each sample exactly once)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """Groups a deterministic sampler's indices into batches; can skip the first batches of one epoch.

    Resuming mid-epoch sets ``skip`` to the number of batches already trained, so data order continues
    exactly where it stopped: no batch is repeated, none is skipped.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool = False) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        batch: list[int] = []
        produced = 0
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                if produced >= skip:
                    yield batch
                produced += 1
                batch = []
        if batch and not self.drop_last and produced >= skip:
            yield batch

    def __len__(self) -> int:
        count = len(self.sampler)  # type: ignore[arg-type]
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


def train_sampler(
    dataset: Dataset, batch_size: int, rank: int, world_size: int, seed: int, group_by_length: bool
) -> Sampler[int]:
    """A sampler whose order is a pure function of (seed, epoch): the same on resume, disjoint across ranks."""
    lengths = getattr(dataset, "lengths", None) if group_by_length else None
    if lengths is not None:
        from ..datasets.samplers import LengthGroupedSampler

        return LengthGroupedSampler(lengths, batch_size, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)


def eval_sampler(dataset: Dataset, rank: int, world_size: int) -> Sampler[int]:
    from ..datasets.samplers import ShardedEvalSampler

    return ShardedEvalSampler(len(dataset), num_replicas=world_size, rank=rank)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    rank: int,
    world_size: int,
    seed: int,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
    group_by_length: bool = False,
    pin_memory: bool = False,
    equal_batches: bool = False,
) -> DataLoader:
    """A DataLoader that shards ``dataset`` over ranks; training order is resumable, evaluation exact-once.

    ``equal_batches`` gives every rank the same number of evaluation batches (repeating a few samples, as
    ``DistributedSampler`` does) for loops that call a collective per batch.
    """
    collate_fn = collate_fn or getattr(dataset, "collate_fn", None)
    common: dict[str, Any] = {
        "collate_fn": collate_fn,
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "persistent_workers": num_workers > 0,
        # Its own generator: creating an iterator must not draw from the global RNG, or a resumed run's
        # dropout masks would shift by one draw against an uninterrupted run.
        "generator": torch.Generator().manual_seed(seed),
    }
    if isinstance(dataset, IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, **common)
    if train:
        sampler = train_sampler(dataset, batch_size, rank, world_size, seed, group_by_length)
        return DataLoader(dataset, batch_sampler=ResumableBatchSampler(sampler, batch_size), **common)
    sampler = (DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False) if equal_batches
               else eval_sampler(dataset, rank, world_size))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **common)


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor inside nested dicts, lists and tuples to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        if hasattr(batch, "to"):  # transformers' BatchEncoding moves itself
            return batch.to(device)
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch


def batch_size_of(batch: Any) -> int:
    """Number of samples in a batch: the first dimension of its first tensor (or its length)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else 1
    if isinstance(batch, Mapping):
        for value in batch.values():
            return batch_size_of(value)
    if isinstance(batch, Sequence) and batch:
        return batch_size_of(batch[0]) if isinstance(batch[0], (torch.Tensor, Mapping)) else len(batch)
    return 1
