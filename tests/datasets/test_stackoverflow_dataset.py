"""StackOverflowDataset with the real MiniLM tokenizer: pre-tokenized, truncated, dynamically padded."""

import csv

import pytest
import torch

from trainlab.errors import DataError
from trainlab.registries import DATASETS

MAX_LENGTH = 48


@pytest.fixture(scope="module")
def train_set(stackoverflow_root, minilm_tokenizer):
    cfg = {
        "NAME": "StackOverflowDataset",
        "ROOT": str(stackoverflow_root),
        "SPLIT": "train",
        "MAX_LENGTH": MAX_LENGTH,
    }
    return DATASETS.build(cfg, tokenizer=minilm_tokenizer)


def test_items_are_token_ids_truncated_at_max_length(train_set, minilm_tokenizer):
    assert len(train_set) == 480
    item = train_set[0]
    assert set(item) == {"input_ids", "attention_mask", "token_type_ids", "tabular", "label"}
    assert len(item["tabular"]) == 5 and item["label"] in (0, 1)
    lengths = train_set.lengths
    assert lengths == [len(train_set[i]["input_ids"]) for i in range(len(train_set))]
    assert max(lengths) == MAX_LENGTH  # long questions are cut...
    assert min(lengths) < MAX_LENGTH // 2  # ...short ones are not padded
    assert all(
        ids[-1] == minilm_tokenizer.sep_token_id for ids in (train_set[i]["input_ids"] for i in range(20))
    )


def test_collate_pads_to_the_longest_in_the_batch(train_set, minilm_tokenizer):
    shortest = sorted(range(len(train_set)), key=train_set.lengths.__getitem__)[:4]
    batch = train_set.collate_fn([train_set[i] for i in shortest])
    longest = max(train_set.lengths[i] for i in shortest)
    assert batch["input_ids"].shape == (4, longest) and longest < MAX_LENGTH
    assert batch["input_ids"].dtype == torch.long and batch["token_type_ids"].shape == (4, longest)
    assert batch["tabular"].shape == (4, 5) and batch["tabular"].dtype == torch.float32
    assert batch["labels"].shape == (4,) and batch["labels"].dtype == torch.long
    for row, index in enumerate(shortest):
        length = train_set.lengths[index]
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (longest - length)
        assert (batch["input_ids"][row, length:] == minilm_tokenizer.pad_token_id).all()


def test_a_second_construction_reuses_the_tokenization_cache(train_set, stackoverflow_root, minilm_tokenizer):
    cache_files = sorted((stackoverflow_root / "train").glob("cache-*.arrow"))
    again = DATASETS.get("StackOverflowDataset")(stackoverflow_root, "train", minilm_tokenizer, MAX_LENGTH)
    assert sorted((stackoverflow_root / "train").glob("cache-*.arrow")) == cache_files
    assert again.lengths == train_set.lengths


def test_val_names_the_validation_split_and_text_only_keeps_the_prototype_batch(stackoverflow_root):
    dataset = DATASETS.get("StackOverflowDataset")(stackoverflow_root, split="val")
    assert len(dataset) == 60 and dataset.lengths is None and dataset.label_names == ["open", "closed"]
    batch = dataset.collate_fn([dataset[0], dataset[1]])
    assert set(batch) == {"text", "tabular", "label"}
    assert isinstance(batch["text"][0], str) and batch["tabular"].shape == (2, 5)


def test_a_missing_split_names_the_path_and_the_command(tmp_path):
    with pytest.raises(DataError, match="python -m trainlab.preprocess.stackoverflow") as error:
        DATASETS.get("StackOverflowDataset")(tmp_path, split="test")
    assert str(tmp_path / "test") in str(error.value)


def test_an_empty_or_damaged_split_folder_is_a_data_error_naming_it(stackoverflow_root, tmp_path):
    import shutil

    root = tmp_path / "so"
    shutil.copytree(stackoverflow_root, root, ignore=shutil.ignore_patterns("cache-*"))
    shutil.rmtree(root / "test")
    (root / "test").mkdir()
    dataset_class = DATASETS.get("StackOverflowDataset")
    rerun = f"python -m trainlab.preprocess.stackoverflow --input <train-sample.csv> --output {root} --overwrite"
    assert dataset_class.config_errors(root=root, split="test") == [
        f"dataset folder {root / 'test'} is empty; run `{rerun}` to write the splits again"
    ]
    assert dataset_class.config_errors(root=root, split="val") == []
    with pytest.raises(DataError, match=f"dataset folder {root / 'test'} is empty"):
        dataset_class(root, split="test")
    (root / "test" / "state.json").write_text("{not json")
    assert dataset_class.config_errors(root=root, split="test") == []  # only a read finds this out
    with pytest.raises(DataError, match=f"dataset folder {root / 'test'} cannot be read"):
        dataset_class(root, split="test")


def test_from_csv_scores_new_questions_without_labels(
    stackoverflow_root, minilm_tokenizer, shipped_sample, tmp_path
):
    with shipped_sample.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:5]
    columns = [column for column in rows[0] if column != "OpenStatus"]  # as in Kaggle's test files
    source = tmp_path / "new.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    dataset = DATASETS.get("StackOverflowDataset").from_csv(source, stackoverflow_root, minilm_tokenizer, 32)
    assert dataset.post_ids == [row["PostId"] for row in rows] and dataset.dropped_rows["bad_date"] == 0
    batch = dataset.collate_fn([dataset[i] for i in range(len(dataset))])
    assert "labels" not in batch and batch["input_ids"].shape == (5, 32) and batch["tabular"].shape == (5, 5)
