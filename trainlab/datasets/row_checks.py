"""Malformed causal-LM rows found in one pass before tokenizing, reported as one line naming file and line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import DataError
from .sources import RowSource

ROLES = ("system", "user", "assistant")
MESSAGE_SHAPE = 'expected a list of {"role": "system|user|assistant", "content": "..."}'


def check_rows(rows: Any, source: RowSource, fields: dict[str, str], batch_size: int = 1000) -> None:
    """Raise DataError for the first row whose ``fields`` (kind → column, kinds ``messages``, ``text``,
    ``prompt``, ``response``) do not hold what that kind needs, counting the bad rows after it."""
    first, bad = None, 0
    for index, problem in _problems(rows, fields, batch_size):
        first = first or (index, problem)
        bad += 1
    if first is not None:
        index, problem = first
        more = f" ({bad - 1:,} more bad rows after it)" if bad > 1 else ""
        raise DataError(f"{source.where(index)}: {problem}{more}")


def _problems(rows: Any, fields: dict[str, str], batch_size: int) -> Iterator[tuple[int, str]]:
    start = 0
    for batch in rows.select_columns(list(fields.values())).iter(batch_size=batch_size):
        columns = [(kind, batch[column]) for kind, column in fields.items()]
        for offset in range(len(columns[0][1])):
            for kind, values in columns:
                value = values[offset]
                problem = messages_problem(value) if kind == "messages" else _text_problem(kind, value)
                if problem:
                    yield start + offset, f"'{fields[kind]}' {problem}"
                    break
        start += len(columns[0][1])


def _text_problem(kind: str, value: Any) -> str | None:
    if value is None:
        return f"is missing; every row needs a '{kind}' string"
    if not isinstance(value, str):
        return f"is a {type(value).__name__} ({_short(value)}), expected a string"
    return None


def messages_problem(messages: Any) -> str | None:
    """What is wrong with a conversation, or None: a list of messages with known roles, non-empty string
    contents, and at least one assistant turn to learn from."""
    if not isinstance(messages, list):
        return f"is a {type(messages).__name__} ({_short(messages)}), {MESSAGE_SHAPE}"
    for number, message in enumerate(messages, start=1):
        problem = _message_problem(message)
        if problem:
            return f"message {number} {problem}"
    if not any(message["role"] == "assistant" for message in messages):
        return "has no assistant message, so nothing to learn from; every conversation needs at least one"
    return None


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return f"is a {type(message).__name__} ({_short(message)}), {MESSAGE_SHAPE}"
    role, content = message.get("role"), message.get("content")
    if role is None or content is None:
        missing = " and ".join(key for key in ("role", "content") if message.get(key) is None)
        return f"has no {missing}; {MESSAGE_SHAPE}"
    if role not in ROLES:
        return f"has role {_short(role)}; expected one of {', '.join(ROLES)}"
    if not isinstance(content, str):
        return f"({role}) has content of type {type(content).__name__} ({_short(content)}), expected a string"
    if not content.strip():
        return f"({role}) has empty content"
    return None


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
