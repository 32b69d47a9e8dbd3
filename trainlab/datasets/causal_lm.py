"""Text for causal-LM fine-tuning from JSON Lines: plain text, or prompt/response pairs with the prompt masked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..registries import DATASETS
from .base import DatasetBase, Transform

IGNORE_INDEX = -100  # label of tokens that take no part in the loss (prompt, padding)


def _encode(batch: dict[str, list[Any]], tokenizer: Any, max_length: int, text_field: str,
            prompt_field: str, response_field: str) -> dict[str, list[Any]]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if prompt_field:
        prompts = tokenizer(batch[prompt_field], add_special_tokens=False)["input_ids"]
        responses = tokenizer(batch[response_field], add_special_tokens=False)["input_ids"]
        ids = [(p + r + eos)[:max_length] for p, r in zip(prompts, responses)]
        labels = [([IGNORE_INDEX] * len(p) + r + eos)[:max_length] for p, r in zip(prompts, responses)]
    else:
        ids = [(t + eos)[:max_length] for t in tokenizer(batch[text_field], add_special_tokens=False)["input_ids"]]
        labels = [list(t) for t in ids]
    return {"input_ids": ids, "labels": labels, "length": [len(t) for t in ids]}


@DATASETS.register_module()
class CausalLMDataset(DatasetBase):
    """Rows of ``ROOT/<split>.jsonl`` (or the file ROOT itself) tokenized once, cached by ``datasets``.

    Plain text (``text_field``) trains on every token; with ``prompt_field`` and ``response_field`` the
    prompt tokens are masked out of the loss, as in instruction tuning. Batches are padded to their
    longest row; ``labels`` use -100 for tokens outside the loss.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        tokenizer: Any = None,
        max_length: int = 512,
        text_field: str = "text",
        prompt_field: str = "",
        response_field: str = "response",
        transform: Transform | None = None,
        cache_in_memory: bool = False,
    ) -> None:
        super().__init__(transform, cache_in_memory)
        if tokenizer is None:
            raise DataError("CausalLMDataset needs a tokenizer: MODEL.PRETRAINED must hold one (tokenizer.json etc.)")
        path = Path(root)
        path = path if path.is_file() else path / f"{split}.jsonl"
        if not path.is_file():
            raise DataError(f"{path} not found: DATASET.*.ROOT must be a .jsonl file or a folder with <split>.jsonl")
        from datasets import load_dataset

        rows = load_dataset("json", data_files=str(path), split="train")
        needed = [prompt_field, response_field] if prompt_field else [text_field]
        missing = [field for field in needed if field not in rows.column_names]
        if missing:
            raise DataError(f"{path} has no field {', '.join(missing)} (fields: {', '.join(rows.column_names)})")
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        encoded = rows.map(
            _encode, batched=True, remove_columns=rows.column_names, desc=f"Tokenizing {path.name}",
            fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "text_field": text_field,
                       "prompt_field": prompt_field, "response_field": response_field},
        )
        self._lengths = encoded["length"][:]
        self.data = encoded.remove_columns("length")

    @property
    def lengths(self) -> Sequence[int]:
        return self._lengths

    def collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(item["input_ids"]) for item in batch)
        input_ids = torch.full((len(batch), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, item in enumerate(batch):
            size = len(item["input_ids"])
            input_ids[row, :size] = torch.as_tensor(item["input_ids"])
            labels[row, :size] = torch.as_tensor(item["labels"])
            attention_mask[row, :size] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
