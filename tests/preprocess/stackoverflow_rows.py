"""Kaggle-schema CSV helpers for the preprocessing tests: the shipped sample and every kind of bad row."""

import csv
from pathlib import Path

from trainlab.preprocess.stackoverflow_csv import KAGGLE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
SHIPPED_SAMPLE = REPO / "examples" / "stackoverflow" / "train-sample.csv"

# Row number -> (column changes, the reason it must be dropped for). A row failing several checks
# counts under the first reason in DROP_REASONS order only.
BAD_ROWS = {
    1: ({"BodyMarkdown": ""}, "empty_body"),
    2: ({"BodyMarkdown": "  \n  "}, "empty_body"),
    3: ({"Title": ""}, "empty_title"),
    4: ({"Title": "   "}, "empty_title"),
    5: ({"PostCreationDate": "2012-07-31 21:42:52"}, "bad_date"),
    6: ({"OwnerCreationDate": "13/45/2011 10:00:00"}, "bad_date"),
    7: ({"OwnerCreationDate": ""}, "bad_date"),
    8: (
        {"PostCreationDate": "01/01/2009 00:00:00", "OwnerCreationDate": "06/01/2010 12:00:00"},
        "negative_day_difference",
    ),
    9: (
        {"PostCreationDate": "03/05/2011 10:00:00", "OwnerCreationDate": "03/05/2011 10:00:01"},
        "negative_day_difference",
    ),
    10: ({"OpenStatus": "closed"}, "unknown_status"),
    11: ({"OpenStatus": ""}, "unknown_status"),
    12: ({"OpenStatus": "spam", "Title": "", "BodyMarkdown": ""}, "unknown_status"),
    13: ({"ReputationAtPostCreation": "lots"}, "bad_reputation"),
}


def write_rows(path: Path, rows: list[dict], columns=KAGGLE_COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
