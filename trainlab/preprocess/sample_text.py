"""Titles and Markdown bodies for the synthetic Stack Overflow sample (see ``sample_data``).

Each style (``"open"`` or a closed reason) has its own phrasing, but the styles share topics,
tags and much vocabulary: open questions also say "best", some closed ones paste code or errors.
"""

from __future__ import annotations

import random

from .sample_phrases import (
    ACTIONS,
    CATEGORIES,
    CLOSED_BODIES,
    CLOSED_TITLES,
    CODE,
    NAMES,
    OPEN_CONTEXT,
    OPEN_ENDINGS,
    OPEN_INTROS,
    OPEN_TITLES,
    OTHERS,
    SITES,
    UPDATES,
)


def _fill(rng: random.Random, template: str, topic: dict) -> str:
    return template.format(
        name=topic["name"],
        thing=rng.choice(topic["things"]),
        error=rng.choice(topic["errors"]).split(":")[0],
        action=rng.choice(ACTIONS),
        version=f"{rng.randint(1, 4)}.{rng.randint(0, 9)}",
        category=rng.choice(CATEGORIES),
        other=rng.choice([o for o in OTHERS if o != topic["name"]]),
        site=rng.choice(SITES),
        line=rng.randint(3, 240),
    )


def title(rng: random.Random, style: str, topic: dict) -> str:
    """A question title in ``style`` ("open" or a closed reason) about ``topic``."""
    templates = OPEN_TITLES if style == "open" else CLOSED_TITLES[style]
    return _fill(rng, rng.choice(templates), topic)


def code_block(rng: random.Random, topic: dict, max_lines: int) -> str:
    """A Markdown code block (4-space indent): a window of 2..max_lines lines of the topic's snippet."""
    snippet = CODE[topic["lang"]]
    names = {key: rng.choice(NAMES) for key in "abc"}
    start, count = rng.randrange(len(snippet)), rng.randint(2, max_lines)
    lines = (snippet[(start + i) % len(snippet)].format(**names) for i in range(count))
    return "\n".join(f"    {line}" if line else "" for line in lines)


def body(rng: random.Random, style: str, topic: dict) -> str:
    """A Markdown question body in ``style``; lengths vary from one line to long posts."""
    return _open_body(rng, topic) if style == "open" else _closed_body(rng, style, topic)


def _open_body(rng: random.Random, topic: dict) -> str:
    parts = [_fill(rng, rng.choice(OPEN_INTROS), topic)]
    parts += [_fill(rng, s, topic) for s in rng.sample(OPEN_CONTEXT, k=rng.randint(0, 4))]
    if rng.random() < 0.85:
        parts += ["Here is my code:", code_block(rng, topic, max_lines=rng.choice([6, 12, 24, 48]))]
    if rng.random() < 0.6:
        parts += ["When I run it I get this error:", "    " + rng.choice(topic["errors"])]
    if rng.random() < 0.25:
        parts += ["And this is how I call it:", code_block(rng, topic, max_lines=8)]
    if rng.random() < 0.2:
        parts += [_fill(rng, rng.choice(UPDATES), topic), code_block(rng, topic, max_lines=30)]
    parts.append(rng.choice(OPEN_ENDINGS))
    return "\n\n".join(parts)


def _closed_body(rng: random.Random, style: str, topic: dict) -> str:
    sentences = CLOSED_BODIES[style]
    # Mostly short posts, with a long tail of rambling ones.
    count = min(len(sentences), 1 + int(rng.expovariate(0.7)))
    parts = [_fill(rng, s, topic) for s in rng.sample(sentences, k=count)]
    if style == "too localized" and rng.random() < 0.6:
        parts.append(code_block(rng, topic, max_lines=30))
    if style == "not a real question" and rng.random() < 0.2:
        parts.append(rng.choice(topic["errors"]))
    if rng.random() < 0.15:
        parts.append(_fill(rng, rng.choice(OPEN_CONTEXT), topic))
    return "\n\n".join(parts)
