"""Conversations rendered by a chat template, with labels on the assistant turns only.

Each assistant turn is located as a span of characters in the rendered text: it starts where the
conversation before it, rendered with the assistant's turn opened, ends, and it ends where the
conversation up to and including it ends (so the template's end-of-turn token is learnt too). The whole
text is tokenized once; a token is labelled when its characters lie inside a span.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .prompts import render_chat

IGNORE_INDEX = -100  # label of tokens that take no part in the loss

Span = tuple[int, int]


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]], template: str | None) -> tuple[str, list[Span]]:
    """The rendered conversation and the character span [start, end) of every assistant turn in it."""
    full = render_chat(tokenizer, messages, template)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            opened = render_chat(tokenizer, messages[:index], template, add_generation_prompt=True)
            closed = render_chat(tokenizer, messages[:index + 1], template)
            spans.append((_prefix_end(full, opened, index), _prefix_end(full, closed, index + 1)))
    return full, spans


def encode_chats(tokenizer: Any, conversations: Sequence[list[dict[str, str]]], template: str | None,
                 train_on_prompt: bool = False) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` of every conversation: the template writes the special tokens (BOS, end of
    turn), and labels are -100 outside assistant turns unless ``train_on_prompt``."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("'messages' rows need a fast tokenizer (tokenizer.json) to map tokens to characters; "
                          "load the model's tokenizer with use_fast=True")
    rendered = [_render(tokenizer, messages, template, train_on_prompt) for messages in conversations]
    encoded = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    pairs = []
    for ids, offsets, (_, spans) in zip(encoded["input_ids"], encoded["offset_mapping"], rendered):
        labels = [token if inside else IGNORE_INDEX for token, inside in zip(ids, tokens_inside(offsets, spans))]
        pairs.append((list(ids), labels))
    return pairs


def tokens_inside(offsets: Sequence[Span], spans: Sequence[Span]) -> list[bool]:
    """For each token's character span (in order), whether it lies inside one of ``spans`` (in order)."""
    inside, current = [], 0
    for start, end in offsets:
        while current < len(spans) and spans[current][1] <= start:
            current += 1  # that span ended before this token
        inside.append(current < len(spans) and spans[current][0] <= start and end <= spans[current][1])
    return inside


def _render(tokenizer: Any, messages: list[dict[str, str]], template: str | None,
            train_on_prompt: bool) -> tuple[str, list[Span]]:
    if train_on_prompt:  # the whole text is learnt: no turns to locate
        text = render_chat(tokenizer, messages, template)
        return text, [(0, len(text))]
    return assistant_spans(tokenizer, messages, template)


def _prefix_end(full: str, part: str, count: int) -> int:
    if not full.startswith(part):
        raise ConfigError(
            f"the chat template renders the first {count} message(s) differently inside a longer conversation, so "
            "assistant turns cannot be located for the loss; use a template that renders earlier turns unchanged "
            "(e.g. DATASET.*.CHAT_TEMPLATE: chatml) or set DATASET.*.TRAIN_ON_PROMPT: true")
    return len(part)
