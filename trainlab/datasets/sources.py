"""Where causal-LM rows come from: a JSON Lines file, a folder of ``<split>.jsonl``, or a ``save_to_disk`` folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

FIX = "DATASET.*.ROOT must be a .jsonl file, a folder with <split>.jsonl, or a folder Dataset.save_to_disk wrote"


@dataclass(frozen=True)
class RowSource:
    """Rows read from ``path``; ``lines`` says whether row i is line i+1 of a JSON Lines file (blank lines aside)."""

    path: Path
    lines: bool

    @property
    def name(self) -> str:
        return self.path.name

    def where(self, index: int) -> str:
        """Row ``index`` as a user finds it: ``data/train.jsonl line 12`` or ``data/saved row index 11``."""
        if self.lines:
            return f"{self.path} line {_line_number(self.path, index)}"
        return f"{self.path} row index {index}"


def find_source(root: str | Path, split: str) -> RowSource:
    """The file or saved folder that holds ``split`` under ``root``; DataError when there is none."""
    path = Path(root)
    if path.is_file():
        return RowSource(path, lines=path.suffix == ".jsonl")
    if (path / f"{split}.jsonl").is_file():
        return RowSource(path / f"{split}.jsonl", lines=True)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return RowSource(path, lines=False)
    if not path.exists():
        raise DataError(f"{path} does not exist; {FIX}")
    raise DataError(f"{path} holds neither {split}.jsonl nor a saved dataset; {FIX}")


def source_problem(root: str | Path, split: str) -> str | None:
    """Why ``find_source`` would fail, found without reading any row; None when it would not."""
    try:
        find_source(root, split)
    except DataError as error:
        return str(error)
    return None


def load_rows(source: RowSource, split: str) -> Any:
    """The ``datasets.Dataset`` of ``source`` (memory-mapped, so later ``map`` calls are cached on disk)."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    if source.path.is_dir():
        try:
            data = load_from_disk(str(source.path))
        except (OSError, ValueError, KeyError, TypeError) as error:  # not a saved dataset, or damaged files
            raise DataError(f"{source.path} cannot be read ({' '.join(str(error).split())}); {FIX}") from None
        if isinstance(data, DatasetDict):
            if split not in data:
                raise DataError(f"{source.path} has no split '{split}' (splits: {', '.join(data)}); "
                                "set DATASET.*.SPLIT")
            data = data[split]
        return data
    try:
        return load_dataset("json", data_files=str(source.path), split="train")
    except Exception:  # noqa: BLE001 — datasets wraps pyarrow's and pandas' parse errors in several types
        return _json_rows(source.path)


def _json_rows(path: Path) -> Any:
    """``path`` parsed line by line, for files ``datasets`` cannot read: a bad line raises DataError naming it;
    otherwise every column is kept as JSON, so rows whose values change type reach the row checks."""
    from datasets import Dataset, Features, Json

    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                rows.append(_json_object(line, path, number))
    columns = dict.fromkeys(key for row in rows for key in row)
    return Dataset.from_list(rows, features=Features({column: Json() for column in columns}))


def _json_object(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} line {number} is not valid JSON ({error.msg}); expected one object per line") from None
    if not isinstance(row, dict):
        raise DataError(f"{path} line {number} is a JSON {type(row).__name__}, not an object; expected one per line")
    return row


def _line_number(path: Path, index: int) -> int:
    """The 1-based line of row ``index``: the JSON loader skips blank lines, so count the others."""
    with path.open(encoding="utf-8") as lines:
        seen = -1
        for number, line in enumerate(lines, start=1):
            seen += bool(line.strip())
            if seen == index:
                return number
    return index + 1
