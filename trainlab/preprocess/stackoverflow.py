"""Turn the Kaggle Stack Overflow closed-questions CSV into train/validation/test splits on disk.

Run ``python -m trainlab.preprocess.stackoverflow --input train-sample.csv --output data/stackoverflow``.

The output directory is a ``datasets.DatasetDict`` saved with ``save_to_disk``: one directory per
split (``train``, ``validation``, ``test``; each loads alone with ``datasets.load_from_disk``)
holding ``post_id``, ``text`` (Title + " " + BodyMarkdown), ``tabular`` (the 5 features in
``FEATURE_NAMES``, standardised with the train split's mean and std) and ``label``, plus
``preprocess.json``: label names, feature means/stds, seed, split sizes and drop counts, which
:func:`featurize_csv` reuses so inference sees the same numbers. The splits are written to a
temporary directory beside the output and renamed into place at the end, so a failure leaves
nothing half-written. An earlier output is replaced only when asked (``--overwrite``): runs may
have trained on it, and new splits would mix their test questions into training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DataError, TrainLabError
from .splits_on_disk import INFO_FILE, check_output, write_atomically
from .stackoverflow_csv import (
    FEATURE_NAMES,
    STATUSES,
    Standardizer,
    describe_drops,
    feature_matrix,
    read_questions,
)

SPLITS = ("train", "validation", "test")
LABEL_SCHEMES = {"binary": ("open", "closed"), "multiclass": STATUSES}


@dataclass(frozen=True)
class PreprocessSummary:
    """What one preprocessing run read, kept, dropped and wrote."""

    output_dir: Path
    rows_read: int
    rows_kept: int
    dropped: dict[str, int]
    split_sizes: dict[str, int]
    label_names: tuple[str, ...]
    label_counts: dict[str, dict[str, int]]  # split -> label name -> rows

    def line(self) -> str:
        """One line for the terminal: rows read, kept, dropped by reason, split sizes, output."""
        reasons = describe_drops(self.dropped)
        splits = " / ".join(f"{split} {size}" for split, size in self.split_sizes.items())
        return (
            f"read {self.rows_read} rows, kept {self.rows_kept}, dropped {self.rows_read - self.rows_kept} "
            f"({reasons}); {splits} -> {self.output_dir}"
        )


def preprocess(
    input_csv: str | Path,
    output_dir: str | Path,
    labels: str = "binary",
    seed: int = 42,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
) -> PreprocessSummary:
    """Read ``input_csv``, split it (shuffled with ``seed``), standardise on train and save to ``output_dir``.

    Args:
        labels: ``"binary"`` (open -> 0, every closed reason -> 1) or ``"multiclass"`` (the 5
            OpenStatus values in ``STATUSES`` order).
        fractions: train / validation / test shares, each > 0, summing to 1.
        overwrite: replace an earlier preprocessing output in ``output_dir`` (refused otherwise).
    """
    if labels not in LABEL_SCHEMES:
        raise DataError(f"labels must be one of {', '.join(LABEL_SCHEMES)}, got {labels!r}")
    fractions = _check_fractions(fractions)
    output = Path(output_dir)
    check_output(output, overwrite)

    table, rows_read, dropped = read_questions(input_csv)
    status_to_label = _status_to_label(labels)
    label_names = LABEL_SCHEMES[labels]
    sizes = _split_sizes(len(table), fractions, input_csv, rows_read, dropped)
    order = np.random.default_rng(seed).permutation(len(table))
    features = feature_matrix(table)[order]
    label_ids = np.array([status_to_label[status] for status in table.column("status").to_pylist()])[order]
    standardizer = Standardizer.fit(features[: sizes["train"]])  # train rows come first in `order`
    fingerprint = _fingerprint(input_csv, labels, seed, fractions)
    # One shuffled copy of the rows; every split is a zero-copy slice of it.
    shuffled = _questions_dataset(
        table.take(order), standardizer.apply(features), label_ids, label_names, fingerprint
    )
    del table
    ends = np.cumsum(list(sizes.values())).tolist()
    splits = {
        split: shuffled.select(range(end - size, end)) for (split, size), end in zip(sizes.items(), ends)
    }
    summary = PreprocessSummary(
        output_dir=output,
        rows_read=rows_read,
        rows_kept=len(shuffled),
        dropped=dropped,
        split_sizes=sizes,
        label_names=label_names,
        label_counts={
            split: dict(zip(label_names, np.bincount(data["label"][:], minlength=len(label_names)).tolist()))
            for split, data in splits.items()
        },
    )
    info = {
        "source": str(input_csv),
        "labels": labels,
        "label_names": list(label_names),
        "status_to_label": status_to_label,
        **standardizer.to_dict(),
        "seed": seed,
        "fractions": list(fractions),
        "rows_read": rows_read,
        "rows_kept": summary.rows_kept,
        "dropped": dropped,
        "split_sizes": summary.split_sizes,
        "label_counts": summary.label_counts,
    }
    write_atomically(output, splits, info)
    return summary


def load_preprocess_info(data_dir: str | Path) -> dict[str, Any]:
    """The ``preprocess.json`` saved with the splits in ``data_dir``."""
    path = Path(data_dir) / INFO_FILE
    if not path.is_file():
        raise DataError(
            f"{path} not found; run `python -m trainlab.preprocess.stackoverflow --input <csv> "
            f"--output {data_dir}` first"
        )
    return json.loads(path.read_text())


def featurize_csv(input_csv: str | Path, data_dir: str | Path) -> tuple[Any, int, dict[str, int]]:
    """Prepare new questions in the Kaggle schema for inference with ``data_dir``'s saved statistics.

    ``OpenStatus`` is not needed. Returns a ``datasets.Dataset`` with ``post_id``, ``text`` and
    ``tabular`` (no ``label``), the number of rows read, and the rows dropped per reason; a file
    without a single usable row raises :class:`DataError` with those counts.
    """
    standardizer = Standardizer.from_dict(load_preprocess_info(data_dir))
    table, rows_read, dropped = read_questions(input_csv, with_status=False)
    if len(table) == 0:
        raise DataError(
            f"{input_csv}: none of its {rows_read} rows is usable (dropped: {describe_drops(dropped)}); "
            f"fix those rows: each needs a title, a body, valid dates and a reputation"
        )
    tabular = standardizer.apply(feature_matrix(table))
    fingerprint = _fingerprint(input_csv, standardizer)
    return _questions_dataset(table, tabular, None, None, fingerprint), rows_read, dropped


def _status_to_label(labels: str) -> dict[str, int]:
    if labels == "binary":
        return {status: 0 if status == "open" else 1 for status in STATUSES}
    return {status: index for index, status in enumerate(STATUSES)}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1) > 1e-6:
        raise DataError(
            f"fractions must be 3 positive numbers (train validation test) summing to 1, got {fractions}"
        )
    return values  # type: ignore[return-value]


def _split_sizes(
    count: int, fractions: tuple[float, ...], source: Any, rows_read: int, dropped: dict[str, int]
) -> dict[str, int]:
    held_out = [round(count * fraction) for fraction in fractions[1:]]
    if count - sum(held_out) < 1 or min(held_out) < 1:
        raise DataError(
            f"{source} has only {count} usable rows of {rows_read} (dropped: {describe_drops(dropped)}): "
            f"too few for a {fractions} train/validation/test split; fix the dropped rows or use more data"
        )
    return dict(zip(SPLITS, [count - sum(held_out), *held_out]))


def _questions_dataset(
    table: pa.Table,
    tabular: np.ndarray,
    label_ids: np.ndarray | None,
    label_names: Sequence[str] | None,
    fingerprint: str,
) -> Any:
    """A ``datasets.Dataset`` of post_id, text, tabular (the given standardised rows) and label."""
    from datasets import ClassLabel, Dataset, DatasetInfo, Features, List, Value
    from datasets.table import InMemoryTable

    features = Features(
        post_id=Value("string"),
        text=Value("string"),
        tabular=List(Value("float32"), length=len(FEATURE_NAMES)),
    )
    columns = [
        table.column("post_id"),
        table.column("text"),
        pa.FixedSizeListArray.from_arrays(pa.array(tabular.ravel()), len(FEATURE_NAMES)),
    ]
    if label_ids is not None:
        features["label"] = ClassLabel(names=list(label_names))
        columns.append(pa.array(label_ids, pa.int64()))
    arrow_table = pa.Table.from_arrays(columns, schema=features.arrow_schema)
    # An explicit fingerprint: without one, datasets hashes the whole in-memory table (several copies).
    return Dataset(InMemoryTable(arrow_table), info=DatasetInfo(features=features), fingerprint=fingerprint)


def _fingerprint(csv_path: str | Path, *settings: Any) -> str:
    """A stable id of the input file's version and the settings applied to it."""
    stat = Path(csv_path).stat()
    key = repr((str(Path(csv_path).resolve()), stat.st_size, stat.st_mtime_ns, settings))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 with one line on a data or usage error)."""
    parser = argparse.ArgumentParser(
        prog="python -m trainlab.preprocess.stackoverflow",
        description="Split the Kaggle 'Predict Closed Questions on Stack Overflow' CSV for training.",
    )
    parser.add_argument("--input", required=True, help="the Kaggle CSV, e.g. train-sample.csv")
    parser.add_argument(
        "--output", required=True, help="directory for train/validation/test and preprocess.json"
    )
    parser.add_argument(
        "--labels",
        choices=tuple(LABEL_SCHEMES),
        default="binary",
        help="binary: open vs closed; multiclass: the 5 OpenStatus values",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the shuffled split")
    parser.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VAL", "TEST"),
        help="split shares, summing to 1",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier preprocessing output in --output"
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        summary = preprocess(args.input, args.output, args.labels, args.seed, args.fractions, args.overwrite)
    except TrainLabError as error:
        if args.debug:
            traceback.print_exc()
        print(f"trainlab: error: {error}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
