"""DatasetBase (transform, cache, default collate) and IterableDatasetBase across ranks and workers."""

import pytest
from datasets import Dataset
from torch.utils.data import DataLoader

from trainlab.datasets import DatasetBase, IterableDatasetBase
from trainlab.errors import DataError


class Squares(DatasetBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.data = [{"x": float(i), "y": i * i} for i in range(10)]
        self.reads = 0

    def load_item(self, index):
        self.reads += 1
        return super().load_item(index)


def test_transform_cache_and_default_collate():
    dataset = Squares(transform=lambda item: {**item, "x": item["x"] + 0.5}, cache_in_memory=True)
    assert len(dataset) == 10 and dataset.lengths is None
    assert dataset[3] == {"x": 3.5, "y": 9}
    assert dataset[3] == {"x": 3.5, "y": 9} and dataset.reads == 1  # served from the cache
    batch = dataset.collate_fn([dataset[0], dataset[1]])
    assert batch["x"].tolist() == [0.5, 1.5] and batch["y"].tolist() == [0, 1]


def test_a_subclass_without_data_says_so():
    class Empty(DatasetBase):
        pass

    with pytest.raises(DataError, match="Empty did not set self.data"):
        len(Empty())


@pytest.fixture(scope="module")
def saved_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "rows"
    Dataset.from_dict({"row": list(range(23))}).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_across_two_ranks_reads_every_row_once(saved_rows, workers):
    seen = []
    for rank in range(2):
        stream = IterableDatasetBase(saved_rows, transform=lambda row: row["row"], rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=4, num_workers=workers, collate_fn=stream.collate_fn)
        rows = [value for batch in loader for value in batch.tolist()]
        assert len(rows) == len(stream) == (12 if rank == 0 else 11)
        seen += rows
    assert sorted(seen) == list(range(23))


def test_streaming_a_dataset_dict_asks_for_one_split(stackoverflow_root):
    with pytest.raises(DataError, match="holds several splits"):
        IterableDatasetBase(stackoverflow_root)
    first = next(iter(IterableDatasetBase(stackoverflow_root / "test")))
    assert set(first) == {"post_id", "text", "tabular", "label"} and len(first["tabular"]) == 5
