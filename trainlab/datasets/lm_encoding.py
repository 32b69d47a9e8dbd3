"""Causal-LM rows → ``input_ids`` and ``labels`` (-100 outside the loss), fitted to ``max_length``.

Special tokens come from the tokenizer itself: text and prompt/response rows get the leading tokens the
tokenizer adds (BOS, via ``special_affixes``) and end with EOS; conversations get what the chat template
writes. A prompt is encoded exactly as ``encode_prompt`` encodes it for generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .chat import IGNORE_INDEX, encode_chats
from .prompts import encode_prompt, special_affixes

FORMATS = ("auto", "prompt_response", "text", "messages")
TRUNCATIONS = ("right", "drop")
# What became of each row (the ``status`` column): kept whole, cut at max_length, or dropped.
KEPT, TRUNCATED, TOO_LONG, NO_LABELS = range(4)


@dataclass(frozen=True)
class EncodingSpec:
    """How to encode one dataset's rows; ``fields`` maps a kind (text, prompt, response, messages) to its column."""

    format: str
    fields: dict[str, str]
    max_length: int
    truncation: str = "right"
    chat_template: str | None = None
    train_on_prompt: bool = False


def encode_rows(batch: dict[str, list[Any]], tokenizer: Any, spec: EncodingSpec) -> dict[str, list[Any]]:
    """A ``datasets.map(batched=True)`` function: ``input_ids``, ``labels``, ``length`` and ``status`` (KEPT,
    TRUNCATED, TOO_LONG, NO_LABELS) of every row; dropped rows keep empty token lists."""
    fitted = [fit(ids, labels, spec.max_length, spec.truncation) for ids, labels in _encode(batch, tokenizer, spec)]
    return {"input_ids": [ids for ids, _, _ in fitted], "labels": [labels for _, labels, _ in fitted],
            "length": [len(ids) for ids, _, _ in fitted], "status": [status for _, _, status in fitted]}


def fit(ids: list[int], labels: list[int], max_length: int, truncation: str) -> tuple[list[int], list[int], int]:
    """``ids`` and ``labels`` cut to ``max_length`` (or emptied when ``truncation`` is "drop"), and their status.

    A row is dropped when no label is left after its first token: the first token is never predicted.
    """
    status = KEPT
    if len(ids) > max_length:
        if truncation == "drop":
            return [], [], TOO_LONG
        ids, labels, status = ids[:max_length], labels[:max_length], TRUNCATED
    if all(label == IGNORE_INDEX for label in labels[1:]):
        return [], [], NO_LABELS
    return ids, labels, status


def _encode(batch: dict[str, list[Any]], tokenizer: Any, spec: EncodingSpec) -> list[tuple[list[int], list[int]]]:
    fields = spec.fields
    if spec.format == "messages":
        return encode_chats(tokenizer, batch[fields["messages"]], spec.chat_template, spec.train_on_prompt)
    prefix, _ = special_affixes(tokenizer)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if spec.format == "text":
        texts = tokenizer(batch[fields["text"]], add_special_tokens=False)["input_ids"]
        return [(ids, list(ids)) for ids in (prefix + list(text) + eos for text in texts)]
    prompts = tokenizer(batch[fields["prompt"]], add_special_tokens=False)["input_ids"]
    responses = tokenizer(batch[fields["response"]], add_special_tokens=False)["input_ids"]
    pairs = []
    for prompt, response in zip(prompts, responses):
        ids = prefix + list(prompt) + list(response) + eos
        hidden = 0 if spec.train_on_prompt else len(prefix) + len(prompt)
        pairs.append((ids, [IGNORE_INDEX] * hidden + ids[hidden:]))
    return pairs


def generation_example(row: dict[str, Any], tokenizer: Any, spec: EncodingSpec) -> dict[str, Any]:
    """A raw row as a generation task: ``prompt`` (text, or the conversation before its last assistant
    turn), its ``prompt_ids`` (as ``encode_prompt`` gives them) and the ``reference`` continuation.

    A text row is split in half by tokens: the first half is the prompt, the rest the reference.
    """
    fields = spec.fields
    if spec.format == "messages":
        messages = row[fields["messages"]]
        last = max(index for index, message in enumerate(messages) if message["role"] == "assistant")
        prompt, reference = messages[:last], messages[last]["content"]
    elif spec.format == "prompt_response":
        prompt, reference = row[fields["prompt"]], row[fields["response"]]
    else:
        tokens = tokenizer(row[fields["text"]], add_special_tokens=False)["input_ids"]
        half = len(tokens) // 2
        prompt, reference = tokenizer.decode(tokens[:half]), tokenizer.decode(tokens[half:])
    return {"prompt": prompt, "prompt_ids": encode_prompt(tokenizer, prompt, spec.chat_template),
            "reference": reference}
