"""Fixtures for preprocessing tests: a clean generated CSV's rows and a copy with every kind of bad row."""

from pathlib import Path

import pytest
from stackoverflow_rows import BAD_ROWS, write_rows

from trainlab.preprocess.sample_data import generate_rows


@pytest.fixture(scope="module")
def clean_rows() -> list[dict]:
    return generate_rows(200, seed=1)


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory, clean_rows) -> Path:
    """200 questions of which the rows in BAD_ROWS are broken; row 0 keeps a title "NA" and stays."""
    rows = [dict(row) for row in clean_rows]
    rows[0]["Title"] = "NA"
    for index, (changes, _) in BAD_ROWS.items():
        rows[index].update(changes)
    return write_rows(tmp_path_factory.mktemp("bad") / "questions.csv", rows)
