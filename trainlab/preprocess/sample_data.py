"""Generate a synthetic Stack Overflow sample in the Kaggle closed-questions schema.

Run ``python -m trainlab.preprocess.sample_data --rows 600 --seed 0 --output train-sample.csv``.

It stands in for Kaggle's ``train-sample.csv`` in the demo and the tests. About half the
questions are closed. The label is learnable but not from one keyword: open questions tend to
show code, error messages and concrete attempts from established accounts; closed ones tend to
ask for opinions, recommendations, careers or hardware, or dump one-off problems, from new,
low-reputation accounts. Title style, body style and account profile each follow the label
only most of the time, and 10% of the questions are written as if they had the other label.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from . import sample_text as text
from .sample_phrases import GENERIC_TAGS, TOPICS
from .stackoverflow_csv import DATE_FORMAT, KAGGLE_COLUMNS, STATUSES

CLOSED_SHARE = 0.5
LABEL_NOISE = 0.10  # questions written entirely in the other class's style
PART_AGREEMENT = 0.9  # chance that title, body and account each follow the (possibly noisy) style
CLOSED_REASON_WEIGHTS = {
    "not a real question": 0.38,
    "not constructive": 0.22,
    "off topic": 0.22,
    "too localized": 0.18,
}
SITE_LAUNCH = datetime(2008, 7, 31)  # no account is older
FIRST_POST = datetime(2008, 8, 1)
LAST_POST = datetime(2012, 7, 31)


def generate_rows(rows: int, seed: int = 0) -> list[dict[str, str]]:
    """``rows`` questions as dicts keyed by the Kaggle columns, ordered by PostId."""
    rng = random.Random(seed)
    questions = [_question(rng) for _ in range(rows)]
    questions.sort(key=lambda row: row["PostCreationDate"])
    first_id = 4_000_000
    for row in questions:
        first_id += rng.randint(1, 12_000)
        row["PostId"] = str(first_id)
        for column in ("PostCreationDate", "OwnerCreationDate", "PostClosedDate"):
            row[column] = row[column].strftime(DATE_FORMAT) if row[column] else ""
    return questions


def _question(rng: random.Random) -> dict:
    status = "open" if rng.random() >= CLOSED_SHARE else _weighted(rng, CLOSED_REASON_WEIGHTS)
    style = status
    if rng.random() < LABEL_NOISE:  # written like the other class
        style = _weighted(rng, CLOSED_REASON_WEIGHTS) if status == "open" else "open"
    title_style, body_style, account_style = (_part_style(rng, style) for _ in range(3))
    topic = rng.choice(TOPICS)
    posted = FIRST_POST + timedelta(seconds=rng.uniform(0, (LAST_POST - FIRST_POST).total_seconds()))
    account_days, reputation = _account(rng, established=account_style == "open")
    owner_created = max(posted - timedelta(days=account_days), SITE_LAUNCH)
    tags = _tags(rng, topic, body_style)
    closed = None if status == "open" else posted + timedelta(hours=rng.expovariate(1 / 40) + 0.2)
    return {
        "PostCreationDate": posted,
        # User ids grow with the account's creation date, as on the site.
        "OwnerUserId": str((owner_created - SITE_LAUNCH).days * 1_100 + rng.randint(1, 1_000)),
        "OwnerCreationDate": owner_created,
        "ReputationAtPostCreation": str(reputation),
        "OwnerUndeletedAnswerCountAtPostTime": str(min(reputation // 40, int(rng.expovariate(1 / 8)))),
        "Title": text.title(rng, title_style, topic),
        "BodyMarkdown": text.body(rng, body_style, topic),
        **{f"Tag{i + 1}": tags[i] if i < len(tags) else "" for i in range(5)},
        "PostClosedDate": closed,
        "OpenStatus": status,
    }


def _part_style(rng: random.Random, style: str) -> str:
    if rng.random() < PART_AGREEMENT:
        return style
    return _weighted(rng, CLOSED_REASON_WEIGHTS) if style == "open" else "open"


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _account(rng: random.Random, established: bool) -> tuple[float, int]:
    """Account age in days and reputation: established users are older and better known."""
    if established:
        return rng.lognormvariate(math.log(420), 1.0), max(1, int(rng.lognormvariate(math.log(350), 1.4)))
    age = rng.uniform(0, 0.9) if rng.random() < 0.45 else rng.lognormvariate(math.log(45), 1.3)
    return age, max(1, int(rng.lognormvariate(math.log(12), 1.2)))


def _tags(rng: random.Random, topic: dict, style: str) -> list[str]:
    tags = [topic["tags"][0]] + rng.sample(
        topic["tags"][1:], k=min(len(topic["tags"]) - 1, rng.randint(0, 3))
    )
    if style != "open" and rng.random() < 0.4:
        tags = tags[:1] + [rng.choice(GENERIC_TAGS)]
    return tags


def write_csv(rows: Sequence[dict[str, str]], output: str | Path) -> None:
    """Write ``rows`` with the Kaggle header, quoting fields that hold commas, quotes or newlines."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=KAGGLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: write the sample CSV and print its size and class balance."""
    parser = argparse.ArgumentParser(
        prog="python -m trainlab.preprocess.sample_data", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=600, help="number of questions")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")
    parser.add_argument("--output", required=True, help="CSV file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be at least 1, got {args.rows}")
    if Path(args.output).exists() and not args.overwrite:  # it may be the real Kaggle file of the same name
        print(f"trainlab: error: --output {args.output} already exists; choose another file or pass --overwrite "
              f"to replace it", file=sys.stderr)
        return 2
    rows = generate_rows(args.rows, args.seed)
    write_csv(rows, args.output)
    counts = {status: sum(row["OpenStatus"] == status for row in rows) for status in STATUSES}
    print(
        f"wrote {len(rows)} questions to {args.output}: " + ", ".join(f"{s} {n}" for s, n in counts.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
