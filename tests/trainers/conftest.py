"""A small preprocessed Stack Overflow split (the first 200 rows of the shipped sample), built once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "stackoverflow" / "train-sample.csv"


@pytest.fixture(scope="session")
def so_data(tmp_path_factory) -> dict[str, Path]:
    from trainlab.preprocess.stackoverflow import preprocess

    folder = tmp_path_factory.mktemp("stackoverflow")
    csv_path = folder / "small.csv"
    pd.read_csv(SAMPLE).head(200).to_csv(csv_path, index=False)
    preprocess(csv_path, folder / "data", seed=0)
    return {"csv": csv_path, "data": folder / "data"}
