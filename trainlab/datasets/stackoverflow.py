"""The Stack Overflow closed-questions dataset, as written by ``trainlab.preprocess.stackoverflow``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from ..errors import DataError
from ..registries import DATASETS
from .base import DatasetBase, Transform, load_saved_split, saved_split_problem
from .collators import PadCollator
from .text import LENGTH_COLUMN, tokenize_dataset

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
PREPROCESS_COMMAND = "python -m trainlab.preprocess.stackoverflow --input <train-sample.csv> --output {root}"


@DATASETS.register_module()
class StackOverflowDataset(DatasetBase):
    """Questions with their text, 5 standardised tabular features and open/closed label.

    With a tokenizer, texts are tokenized once at construction (truncated to ``max_length``,
    not padded) and cached by ``datasets`` beside the split, so a second construction is fast.
    Items are then ``{input_ids, attention_mask, (token_type_ids), tabular, label}`` and
    :meth:`collate_fn` pads each batch to its longest sequence. Without a tokenizer (or with
    ``text_only``), items keep the raw ``text`` and batches are the prototype's
    ``{'text': list[str], 'tabular': [B, 5], 'label': [B]}``.

    Args:
        root: the preprocessing output directory (holding ``train``, ``validation``, ``test``).
        split: ``train``, ``validation`` (or ``val``) or ``test``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        tokenizer: Any = None,
        max_length: int = 256,
        transform: Transform | None = None,
        cache_in_memory: bool = False,
        text_only: bool = False,
    ) -> None:
        super().__init__(transform, cache_in_memory)
        self.root = Path(root)
        self.split = SPLIT_ALIASES.get(split, split)
        self._use(_load_split(self.root, self.split), tokenizer, max_length, text_only)

    @classmethod
    def from_csv(
        cls,
        csv_path: str | Path,
        root: str | Path,
        tokenizer: Any = None,
        max_length: int = 256,
        text_only: bool = False,
    ) -> StackOverflowDataset:
        """Questions from a new Kaggle-schema CSV (no labels), standardised with ``root``'s saved statistics.

        ``dropped_rows`` (reason -> count) tells which rows could not be used; ``post_ids`` name the rest.
        """
        from ..preprocess.stackoverflow import featurize_csv

        data, _, dropped = featurize_csv(csv_path, root)
        dataset = cls.__new__(cls)
        DatasetBase.__init__(dataset)
        dataset.root, dataset.split, dataset.dropped_rows = Path(root), str(csv_path), dropped
        dataset._use(data, tokenizer, max_length, text_only)
        return dataset

    @classmethod
    def config_errors(cls, root: str | Path = "", split: str = "train", **options: Any) -> list[str]:
        """The split's folder is missing or empty (checked before a run loads its model)."""
        problem = _split_problem(Path(root), SPLIT_ALIASES.get(split, split))
        return [problem] if problem else []

    def _use(self, data: Dataset, tokenizer: Any, max_length: int, text_only: bool) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.text_only = text_only or tokenizer is None
        self.post_ids: list[str] = data["post_id"][:]  # a Column slice is a plain list
        self.has_labels = "label" in data.column_names
        if self.text_only:
            self.data = data.remove_columns("post_id")
            self._lengths = None
            return
        tokenized = tokenize_dataset(data, tokenizer, max_length)
        self._lengths = tokenized[LENGTH_COLUMN][:]
        self.data = tokenized.remove_columns(["post_id", LENGTH_COLUMN])
        self.collator = PadCollator(pad_token_id=tokenizer.pad_token_id or 0)

    @property
    def lengths(self) -> Sequence[int] | None:
        """Token count of every item (for LengthGroupedSampler); None without a tokenizer."""
        return self._lengths

    @property
    def label_names(self) -> list[str]:
        """Class names in label order, e.g. ``['open', 'closed']``."""
        return self.data.features["label"].names if self.has_labels else []

    def collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad token ids to the batch's longest; tabular -> float32 [B, 5]; label -> long ``labels``."""
        if self.text_only:
            collated = {
                "text": [item["text"] for item in batch],
                "tabular": torch.tensor([item["tabular"] for item in batch], dtype=torch.float32),
            }
            if self.has_labels:
                collated["label"] = torch.tensor([item["label"] for item in batch], dtype=torch.long)
            return collated
        collated = self.collator(batch)
        if self.has_labels:
            collated["labels"] = collated.pop("label")
        return collated


def _command(root: Path) -> str:
    """The preprocessing command that (re)writes ``root`` (an earlier output is replaced only on request)."""
    return PREPROCESS_COMMAND.format(root=root) + " --overwrite" * (root / "preprocess.json").is_file()


def _split_problem(root: Path, split: str) -> str | None:
    path = root / split
    if not path.exists():
        return f"Stack Overflow split '{split}' not found at {path}; run `{_command(root)}` to create it"
    return saved_split_problem(path, f"run `{_command(root)}` to write the splits again")


def _load_split(root: Path, split: str) -> Dataset:
    problem = _split_problem(root, split)
    if problem:
        raise DataError(problem)
    path = root / split
    again = f"run `{_command(root)}` to write the splits again"
    data = load_saved_split(path, again)
    missing = {"post_id", "text", "tabular", "label"} - set(data.column_names)
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(sorted(missing))}; {again}")
    if len(data) == 0:
        raise DataError(f"Stack Overflow split '{split}' at {path} holds no questions; {again} from more rows")
    return data
