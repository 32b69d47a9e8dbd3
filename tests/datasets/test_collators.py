"""PadCollator: dynamic padding of token lists, stacking of everything else."""

import torch

from trainlab.registries import COLLATORS

ITEMS = [
    {"input_ids": [101, 7, 8, 102], "attention_mask": [1, 1, 1, 1], "score": 0.5, "label": 1, "id": "a"},
    {"input_ids": [101, 9, 102], "attention_mask": [1, 1, 1], "score": 1.5, "label": 0, "id": "b"},
]


def test_pads_right_to_the_longest_and_stacks_the_rest():
    collator = COLLATORS.build({"NAME": "PadCollator", "PAD_TOKEN_ID": 5})
    batch = collator(ITEMS)
    assert batch["input_ids"].tolist() == [[101, 7, 8, 102], [101, 9, 102, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["score"].dtype == torch.float32 and batch["label"].dtype == torch.long
    assert batch["id"] == ["a", "b"]


def test_pads_left_and_to_a_multiple():
    collator = COLLATORS.get("PadCollator")(pad_token_id=0, pad_to_multiple_of=8, padding_side="left")
    batch = collator(ITEMS)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1].tolist() == [0] * 5 + [101, 9, 102]
    assert batch["attention_mask"][1].tolist() == [0] * 5 + [1, 1, 1]


def test_stacks_tensors_and_float_vectors():
    items = [
        {"pixels": torch.ones(2, 3), "tabular": [0.1, 0.2]},
        {"pixels": torch.zeros(2, 3), "tabular": [1, 2]},
    ]
    batch = COLLATORS.get("PadCollator")()(items)
    assert batch["pixels"].shape == (2, 2, 3)
    assert batch["tabular"].shape == (2, 2) and batch["tabular"].dtype == torch.float32
