"""Tokenization of a text column ahead of training, cached by ``datasets`` next to the data."""

from __future__ import annotations

from typing import Any

from datasets import Dataset

LENGTH_COLUMN = "length"


def tokenize_batch(batch: dict[str, list[Any]], tokenizer: Any, text_column: str, max_length: int) -> dict:
    """Tokenize one batch without padding (the collator pads per batch), truncating to ``max_length``."""
    encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length)
    encoded[LENGTH_COLUMN] = [len(ids) for ids in encoded["input_ids"]]
    return dict(encoded)


def tokenize_dataset(data: Dataset, tokenizer: Any, max_length: int, text_column: str = "text") -> Dataset:
    """Add ``input_ids``, ``attention_mask`` (``token_type_ids``) and ``length``; drop ``text_column``.

    The result is written to a cache file beside a dataset loaded from disk, keyed on the data,
    the tokenizer and ``max_length``, so building the same dataset again skips tokenization.
    """
    return data.map(
        tokenize_batch,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "text_column": text_column, "max_length": max_length},
        remove_columns=[text_column],
        desc=f"Tokenizing (max_length={max_length})",
    )
