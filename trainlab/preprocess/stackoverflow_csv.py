"""Reading the Kaggle "Predict Closed Questions on Stack Overflow" CSV into text, features and status.

The file is read in chunks with vectorised pandas operations, so memory holds one chunk of
raw CSV plus the compact Arrow columns kept so far. Rows that cannot be used are dropped and
counted under the first reason that applies (see ``DROP_REASONS``); a question whose PostId an
earlier usable row already had is dropped too, so no question lands in two splits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import DataError

TAG_COLUMNS = ("Tag1", "Tag2", "Tag3", "Tag4", "Tag5")
KAGGLE_COLUMNS = (
    "PostId",
    "PostCreationDate",
    "OwnerUserId",
    "OwnerCreationDate",
    "ReputationAtPostCreation",
    "OwnerUndeletedAnswerCountAtPostTime",
    "Title",
    "BodyMarkdown",
    *TAG_COLUMNS,
    "PostClosedDate",
    "OpenStatus",
)
STATUS_COLUMN = "OpenStatus"
FEATURE_COLUMNS = (
    "PostId",
    "PostCreationDate",
    "OwnerCreationDate",
    "ReputationAtPostCreation",
    "Title",
    "BodyMarkdown",
    *TAG_COLUMNS,
)
FEATURE_NAMES = ("ReputationAtPostCreation", "BodyLength", "TitleLength", "NumberOfTags", "DayDifference")
STATUSES = ("open", "not a real question", "not constructive", "off topic", "too localized")
DATE_FORMAT = "%m/%d/%Y %H:%M:%S"  # e.g. 07/31/2012 21:42:52
DROP_REASONS = (
    "unknown_status",
    "empty_title",
    "empty_body",
    "bad_date",
    "negative_day_difference",
    "bad_reputation",
    "duplicate_id",
)
CHUNK_ROWS = 10_000


def read_questions(csv_path: str | Path, *, with_status: bool = True) -> tuple[pa.Table, int, dict[str, int]]:
    """Read a Kaggle-schema CSV; return the kept rows, the number of rows read and drops per reason.

    The table holds ``post_id``, ``text`` (Title + " " + BodyMarkdown), one float64 column per
    name in ``FEATURE_NAMES`` (not standardised) and, when ``with_status``, ``status``.
    A missing file, an empty file or a missing column raises :class:`DataError`.
    """
    path = Path(csv_path)
    required = FEATURE_COLUMNS + ((STATUS_COLUMN,) if with_status else ())
    _check_header(path, required)
    tables, dropped, rows_read = [], Counter({reason: 0 for reason in DROP_REASONS}), 0
    try:
        # Everything as text, and empty fields as "" (a title "NA" stays a title).
        chunks = pd.read_csv(
            path, usecols=list(required), dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS
        )
        for chunk in chunks:
            rows_read += len(chunk)
            table, chunk_dropped = _featurize_chunk(chunk, with_status)
            tables.append(table)
            dropped.update(chunk_dropped)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"cannot parse {path} as CSV near row {rows_read + 1}: {error}") from error
    if rows_read == 0:
        raise DataError(f"{path} has a header but no rows; it needs at least one question")
    if not with_status:
        del dropped["unknown_status"]
    table = pa.concat_tables(tables)
    # Later copies of a question go, whichever chunk they are in (the first usable one stays).
    repeated = table.column("post_id").to_pandas().duplicated(keep="first").to_numpy()
    dropped["duplicate_id"] = int(repeated.sum())
    if dropped["duplicate_id"]:
        table = table.filter(pa.array(~repeated))
    return table, rows_read, dict(dropped)


def describe_drops(dropped: dict[str, int]) -> str:
    """The drop counts as text, e.g. ``empty_body 2, duplicate_id 1`` (``none`` when nothing was dropped)."""
    return ", ".join(f"{reason} {count}" for reason, count in dropped.items() if count) or "none"


def _check_header(path: Path, required: tuple[str, ...]) -> None:
    if not path.is_file():
        raise DataError(
            f"input CSV {path} does not exist; pass the Kaggle train-sample.csv (or train.csv) path"
        )
    try:
        header = pd.read_csv(path, nrows=0).columns
    except pd.errors.EmptyDataError as error:
        raise DataError(f"input CSV {path} is empty; expected a header with the Kaggle columns") from error
    missing = [column for column in required if column not in header]
    if missing:
        raise DataError(
            f"input CSV {path} lacks column(s) {', '.join(missing)}; expected the Kaggle 'Predict Closed "
            f"Questions on Stack Overflow' schema: {', '.join(KAGGLE_COLUMNS)}"
        )


def _featurize_chunk(chunk: pd.DataFrame, with_status: bool) -> tuple[pa.Table, Counter]:
    title, body = chunk["Title"], chunk["BodyMarkdown"]
    posted = pd.to_datetime(chunk["PostCreationDate"].str.strip(), format=DATE_FORMAT, errors="coerce")
    owner_created = pd.to_datetime(
        chunk["OwnerCreationDate"].str.strip(), format=DATE_FORMAT, errors="coerce"
    )
    day_difference = (posted - owner_created) / pd.Timedelta(days=1)
    reputation = pd.to_numeric(chunk["ReputationAtPostCreation"].str.strip(), errors="coerce")
    status = chunk[STATUS_COLUMN].str.strip() if with_status else None

    # Checked in DROP_REASONS order; a row counts under its first failing check only.
    checks = {
        "unknown_status": ~status.isin(STATUSES) if with_status else None,
        "empty_title": title.str.strip().eq(""),
        "empty_body": body.str.strip().eq(""),
        "bad_date": posted.isna() | owner_created.isna(),
        "negative_day_difference": day_difference.lt(0),
        "bad_reputation": reputation.isna() | reputation.lt(0),
    }
    rejected = pd.Series(False, index=chunk.index)
    dropped: Counter = Counter()
    for reason, failed in checks.items():
        if failed is not None:
            dropped[reason] = int((failed & ~rejected).sum())
            rejected |= failed
    keep = ~rejected.to_numpy()

    tag_count = sum(chunk[tag].str.strip().ne("").astype(np.float64) for tag in TAG_COLUMNS)
    features = {
        "ReputationAtPostCreation": reputation,
        "BodyLength": body.str.len(),
        "TitleLength": title.str.len(),
        "NumberOfTags": tag_count,
        "DayDifference": day_difference,
    }
    columns = {
        "post_id": pa.array(chunk["PostId"].str.strip()[keep], pa.string()),
        "text": pa.array((title + " " + body)[keep], pa.string()),
        **{name: pa.array(values.to_numpy(np.float64)[keep]) for name, values in features.items()},
    }
    if with_status:
        columns["status"] = pa.array(status[keep], pa.string())
    return pa.table(columns), dropped


def feature_matrix(table: pa.Table) -> np.ndarray:
    """The raw features of ``table`` as a ``[rows, len(FEATURE_NAMES)]`` float64 array."""
    return np.column_stack([table.column(name).to_numpy() for name in FEATURE_NAMES])


@dataclass(frozen=True)
class Standardizer:
    """Per-feature ``(x - mean) / std`` with the statistics of the train split."""

    feature_names: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardizer:
        """Fit on a ``[rows, features]`` array; a constant feature gets std 1 so it maps to 0."""
        stds = features.std(axis=0)
        stds[stds == 0] = 1.0
        return cls(FEATURE_NAMES, tuple(features.mean(axis=0).tolist()), tuple(stds.tolist()))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Standardise a ``[rows, features]`` array: float32 of the same shape."""
        return ((features - np.array(self.means)) / np.array(self.stds)).astype(np.float32)

    def to_dict(self) -> dict[str, list]:
        return {"feature_names": list(self.feature_names), "means": list(self.means), "stds": list(self.stds)}

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> Standardizer:
        return cls(tuple(info["feature_names"]), tuple(info["means"]), tuple(info["stds"]))
