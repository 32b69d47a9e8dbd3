"""Samplers that know about distributed runs: length-grouped training batches and exact-once evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def contiguous_shard(rows: range, parts: int, index: int) -> range:
    """The ``index``-th of ``parts`` contiguous pieces of ``rows``; piece sizes differ by at most one."""
    size, extra = divmod(len(rows), parts)
    start = index * size + min(index, extra)
    return rows[start : start + size + (1 if index < extra else 0)]


def _check_place(num_replicas: int, rank: int) -> None:
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} is outside {num_replicas} replicas; expected 0 <= rank < num_replicas")


class LengthGroupedSampler(Sampler[int]):
    """Yields indices in batches of similar lengths, so dynamic padding adds few pad tokens.

    Each epoch, a seeded permutation is cut into mega-batches of ``mega_batch_mult`` global
    batches (``batch_size * num_replicas`` samples); each mega-batch is sorted by length and cut
    into global batches, and the global batches are shuffled. Every global batch is dealt out
    to the ranks (``step[rank::num_replicas]``), so all ranks of one step get samples of the same
    length group and finish at similar times, and every rank gets the same number of batches.

    The order is a pure function of ``(seed, epoch)``: ``set_epoch(epoch, start_batch=k)``
    resumes exactly after the first ``k`` batches. A short final global batch always comes last,
    so a DataLoader with the same ``batch_size`` cuts this rank's stream into the same batches.
    Ranks never share a sample, except when ``drop_last`` is False and the final global batch
    has fewer samples than ranks: it then repeats some of them so that every rank gets a batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        mega_batch_mult: int = 50,
    ) -> None:
        _check_place(num_replicas, rank)
        if batch_size < 1 or mega_batch_mult < 1:
            raise ValueError(
                f"batch_size ({batch_size}) and mega_batch_mult ({mega_batch_mult}) must be >= 1"
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.global_batch_size = batch_size * num_replicas
        if len(self.lengths) < (self.global_batch_size if drop_last else num_replicas):
            raise ValueError(
                f"{len(self.lengths)} samples cannot give every one of {num_replicas} ranks a batch "
                f"of {batch_size}{' with drop_last' if drop_last else ''}; use fewer ranks or a smaller batch"
            )
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Use ``epoch``'s order from now on, skipping this rank's first ``start_batch`` batches."""
        self.epoch = epoch
        self.start_batch = start_batch

    def global_batches(self) -> list[np.ndarray]:
        """The current epoch's global batches (indices of all ranks together), in step order."""
        rng = np.random.default_rng((self.seed, self.epoch))
        count = len(self.lengths)
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        if self.drop_last:
            order = order[: count - count % self.global_batch_size]
        mega_size = self.global_batch_size * self.mega_batch_mult
        grouped = np.concatenate(
            [
                # Longest first; a stable sort keeps equal lengths in permutation order.
                chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                for chunk in np.split(order, range(mega_size, len(order), mega_size))
            ]
        )
        steps = [
            grouped[i : i + self.global_batch_size] for i in range(0, len(grouped), self.global_batch_size)
        ]
        short = steps.pop() if len(steps[-1]) < self.global_batch_size else None
        if self.shuffle:
            steps = [steps[i] for i in rng.permutation(len(steps))]
        if short is not None:
            steps.append(np.resize(short, max(len(short), self.num_replicas)))
        return steps

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, before ``start_batch`` is applied."""
        return [step[self.rank :: self.num_replicas].tolist() for step in self.global_batches()]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches()[self.start_batch :]:
            yield from batch

    def __len__(self) -> int:
        count = len(self.lengths)
        full_steps, remainder = divmod(count, self.global_batch_size)
        sizes = [self.batch_size] * full_steps
        if remainder and not self.drop_last:
            sizes.append(len(range(self.rank, max(remainder, self.num_replicas), self.num_replicas)))
        return sum(sizes[self.start_batch :])


class ShardedEvalSampler(Sampler[int]):
    """Gives each rank a contiguous block of an evaluation set: every sample exactly once overall.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so ranks may get counts that
    differ by one (13 samples on 2 ranks: 7 and 6); gathering the ranks' outputs in rank
    order restores the dataset order.
    """

    def __init__(self, dataset_len: int, num_replicas: int = 1, rank: int = 0) -> None:
        _check_place(num_replicas, rank)
        self.indices = contiguous_shard(range(dataset_len), num_replicas, rank)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
