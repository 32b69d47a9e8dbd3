"""Causal-LM fine-tuning data: plain text, prompt/response pairs, or chat conversations, tokenized once
(cached by ``datasets``), masked so that only the answer is learnt, and optionally packed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..engine.logging import get_logger
from ..errors import ConfigError, DataError
from ..registries import DATASETS
from ..utils.quiet import datasets_progress_bars_off
from .base import DatasetBase, Transform
from .chat import IGNORE_INDEX
from .lm_encoding import (
    FORMATS,
    NO_LABELS,
    TOO_LONG,
    TRUNCATED,
    TRUNCATIONS,
    EncodingSpec,
    encode_rows,
    generation_example,
)
from .packing import PackedRows, collate_packed, describe_packing, pack_ranges, pad_rows, padding_fraction
from .prompts import NO_TEMPLATE, resolve_chat_template
from .row_checks import check_rows
from .sources import RowSource, find_source, load_rows, source_problem

# Columns each format reads, by kind; the kind's column name comes from the <kind>_field keyword.
FORMAT_KINDS = {"messages": ("messages",), "prompt_response": ("prompt", "response"), "text": ("text",)}
LEARNT = {"messages": "assistant", "prompt_response": "response", "text": "text"}


@DATASETS.register_module()
class CausalLMDataset(DatasetBase):
    """Rows of ``ROOT`` for next-token training; items are ``input_ids`` and ``labels`` (-100 outside the loss).

    ROOT is a .jsonl file, a folder with ``<split>.jsonl``, or a folder ``save_to_disk`` wrote (a Dataset,
    or a DatasetDict holding ``split``). Malformed rows are refused before tokenizing, naming file and line.

    Args:
        root, split: where the rows are (above); ``split`` names the .jsonl file or the DatasetDict split.
        tokenizer: the model's tokenizer, passed at runtime (a fast one for messages rows).
        max_length: longest row in tokens, and the size of packed rows.
        format: ``auto`` (``messages_field`` present → messages; a prompt column → prompt_response; else
            text), ``messages`` (chat template, loss on every assistant turn), ``prompt_response`` (BOS +
            prompt + response + EOS, loss on the response) or ``text`` (BOS + text + EOS, loss on all).
        text_field, prompt_field, response_field, messages_field: the columns read; an empty prompt_field
            means "prompt".
        chat_template: for messages: a name in ``CHAT_TEMPLATES``, a .jinja file or Jinja text; empty uses
            the tokenizer's own.
        train_on_prompt: learn every token, not only responses and assistant turns.
        truncation: ``right`` cuts rows at ``max_length``; ``drop`` drops longer rows. Rows left with
            nothing to learn are dropped either way.
        packing: join examples in order into rows of at most ``max_length`` tokens with ``position_ids``
            restarting per example; batches then have no ``attention_mask``.
        transform, cache_in_memory: as in ``DatasetBase``.
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
        format: str = "auto",
        messages_field: str = "messages",
        chat_template: str = "",
        train_on_prompt: bool = False,
        truncation: str = "right",
        packing: bool = False,
    ) -> None:
        super().__init__(transform, cache_in_memory)
        problems = _option_problems(format, truncation, max_length)
        if problems:
            raise ConfigError("; ".join(problems))
        if tokenizer is None:
            raise DataError("CausalLMDataset needs a tokenizer: MODEL.PRETRAINED must hold one (tokenizer.json etc.)")
        columns = {"text": text_field, "prompt": prompt_field or "prompt", "response": response_field,
                   "messages": messages_field}
        source, rows, self.format, fields = read_checked_rows(root, split, format, columns)
        self.chat_template = _chat_template(self.format, tokenizer, chat_template, source)
        self.tokenizer = tokenizer
        self.spec = EncodingSpec(self.format, fields, max_length, truncation, self.chat_template, train_on_prompt)
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else tokenizer.eos_token_id or 0
        self.packing = packing
        self._rows = rows
        encoded = rows.map(encode_rows, batched=True, remove_columns=rows.column_names,  # cached by datasets
                           desc=f"Tokenizing {source.name}", fn_kwargs={"tokenizer": tokenizer, "spec": self.spec})
        self._use(encoded, source)

    def _use(self, encoded: Any, source: RowSource) -> None:
        """Keep the rows that survived truncation, log what happened to the others, pack if asked."""
        statuses, lengths = encoded["status"][:], encoded["length"][:]
        self._kept = [index for index, status in enumerate(statuses) if status < TOO_LONG]
        get_logger().info(_summary(source.name, Counter(statuses), self.spec))
        if not self._kept:
            raise DataError(f"{source.path}: no rows left to train on after truncation to {self.spec.max_length} "
                            "tokens; raise MAX_LENGTH or check the data")
        examples = encoded.remove_columns(["status", "length"])
        examples = examples if len(self._kept) == len(statuses) else examples.select(self._kept)
        self._lengths = [lengths[index] for index in self._kept]
        if self.packing:
            ranges = pack_ranges(self._lengths, self.spec.max_length)
            self.data = PackedRows(examples, ranges)
            self._lengths = [sum(self._lengths[start:end]) for start, end in ranges]
            get_logger().info(describe_packing(len(self._kept), self._lengths, self.spec.max_length))
        else:
            self.data = examples

    @property
    def lengths(self) -> Sequence[int]:
        """Token count of every item (packed row, or example), for length-grouped sampling."""
        return self._lengths

    def padding_fraction(self, batch_size: int) -> float:
        """Share of padding tokens if the items are batched in order, ``batch_size`` at a time."""
        return padding_fraction(self._lengths, batch_size)

    def generation_examples(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` examples (whatever the packing) as ``{"prompt", "prompt_ids", "reference"}``: the
        prompt (text or messages up to the last assistant turn), its ids as ``encode_prompt`` gives them,
        and the answer it should lead to."""
        rows = self._rows.select(self._kept[:n])
        return [generation_example(row, self.tokenizer, self.spec) for row in rows]

    def collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest item: ``input_ids``, ``labels`` (-100 on padding) and ``attention_mask``;
        packed rows get ``position_ids`` instead of ``attention_mask``."""
        if self.packing:
            return collate_packed(batch, self.pad_token_id)
        longest = max(len(item["input_ids"]) for item in batch)
        ids = [item["input_ids"] for item in batch]
        return {"input_ids": pad_rows(ids, self.pad_token_id, longest),
                "attention_mask": pad_rows([[1] * len(row) for row in ids], 0, longest),
                "labels": pad_rows([item["labels"] for item in batch], IGNORE_INDEX, longest)}

    @classmethod
    def config_errors(cls, root: str | Path = "", split: str = "train", format: str = "auto",
                      truncation: str = "right", max_length: int = 512, text_field: str = "text",
                      prompt_field: str = "", response_field: str = "response", messages_field: str = "messages",
                      **options: Any) -> list[str]:
        """Unknown FORMAT or TRUNCATION, a ROOT that holds no rows for ``split``, and the first malformed row:
        rows are checked without a tokenizer, so a bad one is named before the model loads."""
        problems = _option_problems(format, truncation, max_length)
        problem = source_problem(root, split)
        if problem is None and not problems:
            columns = {"text": text_field, "prompt": prompt_field or "prompt", "response": response_field,
                       "messages": messages_field}
            try:
                with datasets_progress_bars_off():  # the checks print nothing but their findings
                    read_checked_rows(root, split, format, columns)
            except DataError as error:
                problem = str(error)
        return problems + ([problem] if problem else [])


def read_checked_rows(root: str | Path, split: str, format: str, columns: dict[str, str]) -> tuple[RowSource, Any, str, dict[str, str]]:
    """The rows of ``split`` under ``root``, their format (``auto`` detected) and the columns it reads (kind →
    column); DataError naming the file and line of the first malformed row."""
    source = find_source(root, split)
    rows = load_rows(source, split)
    format = format if format != "auto" else detect_format(rows.column_names, columns)
    fields = _format_fields(format, columns, rows.column_names, source)
    check_rows(rows, source, fields)
    return source, rows, format, fields


def detect_format(columns: Sequence[str], fields: dict[str, str]) -> str:
    """``messages`` when its column is there, else ``prompt_response`` when a prompt column is, else ``text``."""
    if fields["messages"] in columns:
        return "messages"
    return "prompt_response" if fields["prompt"] in columns else "text"


def _format_fields(format: str, columns: dict[str, str], present: Sequence[str], source: RowSource) -> dict[str, str]:
    fields = {kind: columns[kind] for kind in FORMAT_KINDS[format]}
    missing = [column for column in fields.values() if column not in present]
    if missing:
        keys = " and ".join(f"{kind.upper()}_FIELD" for kind, column in fields.items() if column in missing)
        raise DataError(f"{source.path} has no column {', '.join(map(repr, missing))} for {format} rows "
                        f"(columns: {', '.join(present)}); set DATASET.*.{keys} or DATASET.*.FORMAT")
    return fields


def _chat_template(format: str, tokenizer: Any, chat_template: str, source: RowSource) -> str | None:
    """The resolved template for messages rows (ConfigError when there is none); None for other formats."""
    if format != "messages":
        if chat_template:
            get_logger().warning(f"{source.name}: CHAT_TEMPLATE is unused: it renders messages rows, not {format}")
        return None
    template = resolve_chat_template(tokenizer, chat_template)
    if template is None:
        raise ConfigError(NO_TEMPLATE)
    return template


def _option_problems(format: str, truncation: str, max_length: int) -> list[str]:
    problems = []
    if format not in FORMATS:
        problems.append(f"FORMAT must be one of {', '.join(FORMATS)}, got {format!r}")
    if truncation not in TRUNCATIONS:
        problems.append(f"TRUNCATION must be one of {', '.join(TRUNCATIONS)}, got {truncation!r}")
    if not isinstance(max_length, int) or max_length < 2:
        problems.append(f"MAX_LENGTH must be an integer of at least 2, got {max_length!r}")
    return problems


def _summary(name: str, statuses: Counter, spec: EncodingSpec) -> str:
    """``train.jsonl: 1,000 rows, 12 truncated to 1024 tokens, 3 dropped (no response tokens left)``."""
    parts = [f"{name}: {sum(statuses.values()):,} {spec.format} rows"]
    if statuses[TRUNCATED]:
        parts.append(f"{statuses[TRUNCATED]:,} truncated to {spec.max_length:,} tokens")
    if statuses[TOO_LONG]:
        parts.append(f"{statuses[TOO_LONG]:,} dropped (longer than {spec.max_length:,} tokens)")
    if statuses[NO_LABELS]:
        parts.append(f"{statuses[NO_LABELS]:,} dropped (no {LEARNT[spec.format]} tokens left)")
    return ", ".join(parts)
