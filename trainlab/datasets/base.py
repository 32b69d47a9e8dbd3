"""Base classes every TrainLab dataset derives from: a map-style and a streaming one."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate, get_worker_info

from ..errors import DataError
from .samplers import contiguous_shard

Transform = Callable[[Any], Any]


class DatasetBase(torch.utils.data.Dataset):
    """A map-style dataset: subclasses put any indexable (list, ``datasets.Dataset``...) in ``self.data``.

    Args:
        transform: applied to every item on access (after the cache, so random transforms still vary).
        cache_in_memory: keep items already read in a dict; each DataLoader worker holds its own copy.
    """

    def __init__(self, transform: Transform | None = None, cache_in_memory: bool = False) -> None:
        self.transform = transform
        self.cache_in_memory = cache_in_memory
        self.data: Any = None
        self._cache: dict[int, Any] = {}

    def __len__(self) -> int:
        if self.data is None:
            raise DataError(f"{type(self).__name__} did not set self.data in its __init__")
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        if self.cache_in_memory and index in self._cache:
            item = self._cache[index]
        else:
            item = self.load_item(index)
            if self.cache_in_memory:
                self._cache[index] = item
        return self.transform(item) if self.transform is not None else item

    def load_item(self, index: int) -> Any:
        """Read item ``index`` from ``self.data``; override to decode files or reshape rows."""
        return self.data[index]

    @property
    def lengths(self) -> Sequence[int] | None:
        """Per-item sizes (e.g. token counts) for length-grouped sampling, or None when unknown."""
        return None

    def collate_fn(self, batch: list[Any]) -> Any:
        """Turn a list of items into a batch; PyTorch's default collate unless a subclass knows better."""
        return default_collate(batch)

    @classmethod
    def config_errors(cls, **options: Any) -> list[str]:
        """Problems with these constructor ``options`` that show without building the dataset (a missing or
        empty data folder), so a run can refuse before its model loads; the default finds none."""
        return []


class IterableDatasetBase(torch.utils.data.IterableDataset):
    """Streams a ``datasets`` dataset saved with ``save_to_disk``, memory-mapped, in stored order.

    Rows are split into contiguous shards, one per (rank, DataLoader worker) pair, so every row is
    read exactly once across all processes; shard sizes differ by at most one row.

    Args:
        data_dir: the directory ``Dataset.save_to_disk`` wrote.
        transform: applied to every row.
        rank, world_size: this process's place in a distributed run; taken from
            ``torch.distributed`` when it is initialised and these are left as None.
    """

    def __init__(
        self,
        data_dir: str | Path,
        transform: Transform | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        path = Path(data_dir)
        self.data_dir = path
        self.data = load_saved_split(path, "point data_dir at a folder Dataset.save_to_disk wrote")
        self.transform = transform
        self.rank, self.world_size = _distributed_place(rank, world_size)

    def __len__(self) -> int:
        """Rows this rank streams (all its DataLoader workers together)."""
        return len(contiguous_shard(range(len(self.data)), self.world_size, self.rank))

    def __iter__(self) -> Iterator[Any]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        rank_rows = contiguous_shard(range(len(self.data)), self.world_size, self.rank)
        # A contiguous range selects a slice of the memory-mapped table: no index mapping is built.
        for row in self.data.select(contiguous_shard(rank_rows, workers, worker_id)):
            yield self.transform(row) if self.transform is not None else row

    def collate_fn(self, batch: list[Any]) -> Any:
        """Turn a list of rows into a batch with PyTorch's default collate."""
        return default_collate(batch)


def saved_split_problem(path: Path, fix: str) -> str | None:
    """Why ``path`` cannot hold a split ``save_to_disk`` wrote, judged without reading it (missing, a file,
    empty), ending with ``fix``; None when it may."""
    if not path.exists():
        return f"dataset folder {path} does not exist; {fix}"
    if not path.is_dir():
        return f"dataset folder {path} is a file, not a folder; {fix}"
    if not any(path.iterdir()):
        return f"dataset folder {path} is empty; {fix}"
    return None


def load_saved_split(path: Path, fix: str) -> Any:
    """The ``datasets.Dataset`` that ``save_to_disk`` wrote at ``path``; a missing, empty, damaged or
    several-split folder raises DataError naming ``path`` and ending with ``fix``."""
    from datasets import DatasetDict, load_from_disk

    problem = saved_split_problem(path, fix)
    if problem:
        raise DataError(problem)
    try:
        data = load_from_disk(str(path))
    except (OSError, ValueError, KeyError, TypeError) as error:  # not a saved dataset, or damaged files
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"dataset folder {path} cannot be read ({reason}); {fix}") from None
    if isinstance(data, DatasetDict):
        raise DataError(f"{path} holds several splits ({', '.join(data)}), not one; point it at one of them")
    return data


def _distributed_place(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = rank if rank is not None else (torch.distributed.get_rank() if initialised else 0)
        world_size = (
            world_size
            if world_size is not None
            else (torch.distributed.get_world_size() if initialised else 1)
        )
    if not 0 <= rank < world_size:
        raise DataError(
            f"rank {rank} is outside a world of {world_size} processes; expected 0 <= rank < world_size"
        )
    return rank, world_size
