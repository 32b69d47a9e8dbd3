"""Data loaders for training (shuffled, sharded, resumable mid-epoch) and evaluation (each sample exactly once)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler


@dataclass(frozen=True)
class EpochPosition:
    """How far an epoch got: ``samples`` consumed by all ranks together, ``world_size`` ranks of ``batch_size``."""

    samples: int
    world_size: int
    batch_size: int


class ResumableBatchSampler(Sampler[list[int]]):
    """Groups a deterministic sampler's indices into batches; can resume one epoch where it stopped.

    Every training sampler consumes its epoch's *global order* step by step: after ``k`` steps, ``k × batch ×
    world`` samples at its front are done, whatever the world size. Resuming on the same world size and batch
    skips the batches already trained (bit-exact). Resuming on another one re-deals the rest of that order to
    the new ranks, one global batch per step, so no sample is seen twice and none is skipped.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool = False) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.skip = 0
        self.epoch = 0
        self.remaining: list[int] | None = None  # the re-dealt rest of a resumed epoch (another world size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    @property
    def place(self) -> tuple[int, int]:
        return getattr(self.sampler, "rank", 0), getattr(self.sampler, "num_replicas", 1)

    def resume(self, position: EpochPosition) -> int:
        """Continue the current epoch after ``position``; returns the batches of this rank already done."""
        world_size = self.place[1]
        if (position.world_size, position.batch_size) == (world_size, self.batch_size):
            self.skip = position.samples // (self.batch_size * world_size)
            return self.skip
        order = global_order(self.sampler, position.world_size, position.batch_size, self.epoch)
        seen = set(order[: position.samples])
        self.remaining = list(dict.fromkeys(i for i in order[position.samples :] if i not in seen))
        return 0

    def __iter__(self) -> Iterator[list[int]]:
        if self.remaining is not None:
            remaining, self.remaining = self.remaining, None
            yield from deal(remaining, self.batch_size, *self.place)
            return
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
        if self.remaining is not None:
            return len(deal(self.remaining, self.batch_size, *self.place))
        count = len(self.sampler)  # type: ignore[arg-type]
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


def global_order(sampler: Sampler[int], world_size: int, batch_size: int, epoch: int) -> list[int]:
    """The order in which ``world_size`` ranks with batches of ``batch_size`` consume ``epoch`` (a step at a time)."""
    from ..datasets.samplers import LengthGroupedSampler

    if isinstance(sampler, LengthGroupedSampler):
        twin = LengthGroupedSampler(sampler.lengths, batch_size, num_replicas=world_size, shuffle=sampler.shuffle,
                                    seed=sampler.seed, drop_last=sampler.drop_last, mega_batch_mult=sampler.mega_batch_mult)
        twin.set_epoch(epoch)
        return [int(i) for step in twin.global_batches() for i in step]
    if isinstance(sampler, DistributedSampler):  # rank r takes order[r::world]: a step takes a prefix of order
        twin = DistributedSampler(sampler.dataset, num_replicas=1, rank=0, shuffle=sampler.shuffle, seed=sampler.seed)
        twin.set_epoch(epoch)
        order = list(twin)
        padding = -len(order) % world_size
        return order + order[:padding]
    raise TypeError(f"cannot resume {type(sampler).__name__} on another world size")


def deal(order: Sequence[int], batch_size: int, rank: int, world_size: int) -> list[list[int]]:
    """This rank's batches when ``order`` is consumed one global batch (``batch_size × world_size``) per step.

    Every rank gets a batch at every step; only a last step with fewer samples than ranks repeats some.
    """
    step_size = batch_size * world_size
    batches = []
    for start in range(0, len(order), step_size):
        step = list(order[start : start + step_size])
        batches.append(step[rank::world_size] or [step[rank % len(step)]])
    return batches


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
