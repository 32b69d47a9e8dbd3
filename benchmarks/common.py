"""What every benchmark mode shares: the workload, step timestamps, data, optimizer and evaluation.

Each mode runs in its own process and writes one JSON result: the wall-clock time at the end of every
optimizer step, the final training loss and the validation accuracy. The harness turns the timestamps
into samples/s the same way for every mode.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


@dataclass(frozen=True)
class Workload:
    """One training run, identical for every mode (the prototype adds ``max_steps`` and pads to 512)."""

    data_dir: str
    model_dir: str
    batch_size: int = 16
    max_length: int = 256
    lr: float = 5.0e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    epochs: int = (
        2  # samples/s is measured over the last epoch: warm, and the same batches in every grouped mode
    )
    seed: int = 42
    log_every: int = 4  # the final training loss is the mean over the last window of this many steps
    max_steps: int = 0  # 0: every epoch; the prototype stops early (its steps all cost the same)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls(**json.loads(text))


class StepClock:
    """Wall-clock times at the start of every epoch and the end of every optimizer step."""

    def __init__(self) -> None:
        self.epoch_start_times: list[float] = []
        self.step_end_times: list[float] = []

    def start_epoch(self) -> None:
        self.epoch_start_times.append(time.time())

    def tick(self) -> None:
        self.step_end_times.append(time.time())

    def to_dict(self) -> dict[str, list[float]]:
        return {"epoch_start_times": self.epoch_start_times, "step_end_times": self.step_end_times}

    def write(self, path: str | Path, final_loss: float | None, val_accuracy: float | None) -> None:
        result = {**self.to_dict(), "final_loss": final_loss, "val_accuracy": val_accuracy}
        Path(path).write_text(json.dumps(result), encoding="utf-8")


def mode_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every mode process takes: the workload as JSON, and where to write its result."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workload", required=True, help="Workload as JSON")
    parser.add_argument("--result", required=True, help="JSON file to write")
    return parser


def load_split(workload: Workload, split: str) -> Any:
    from datasets import load_from_disk

    return load_from_disk(str(Path(workload.data_dir) / split))


def pretokenize(data: Any, tokenizer: Any, max_length: int) -> Any:
    """Token ids truncated to ``max_length``, unpadded, with a ``length`` column; cached beside the data."""

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return dict(encoded)

    keep = {"label"}
    return data.map(encode, batched=True, remove_columns=[c for c in data.column_names if c not in keep])


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, mega_batch_mult: int = 50
) -> list[list[int]]:
    """Shuffle, sort each mega-batch of ``mega_batch_mult`` batches by length, cut, shuffle the batches; short one last."""
    rng = np.random.default_rng((seed, epoch))
    order = rng.permutation(len(lengths))
    mega = batch_size * mega_batch_mult
    grouped = np.concatenate(
        [c[np.argsort(-lengths[c], kind="stable")] for c in np.split(order, range(mega, len(order), mega))]
    )
    batches = [grouped[i : i + batch_size] for i in range(0, len(grouped), batch_size)]
    short = batches.pop() if len(batches[-1]) < batch_size else None
    batches = [batches[i] for i in rng.permutation(len(batches))]
    if short is not None:
        batches.append(short)
    return [batch.tolist() for batch in batches]


def adamw(model: Any, workload: Workload, **options: Any) -> Any:
    """AdamW with weight decay on weights only (not biases and LayerNorm), as TrainLab and HF Trainer do."""
    import torch

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {
            "params": [p for n, p in trainable if not n.endswith(NO_DECAY)],
            "weight_decay": workload.weight_decay,
        },
        {"params": [p for n, p in trainable if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=workload.lr, **options)


def warmup_linear(optimizer: Any, total_steps: int, warmup_ratio: float) -> Any:
    import torch

    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_classifier(workload: Workload) -> tuple[Any, Any]:
    """MiniLM with a 2-class head and its tokenizer, seeded so the new head starts the same in every mode."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(workload.seed)
    model = AutoModelForSequenceClassification.from_pretrained(workload.model_dir, num_labels=2)
    return model, AutoTokenizer.from_pretrained(workload.model_dir)


def accuracy(model: Any, batches: Any) -> float:
    """Share of correct argmax predictions over ``batches`` of model inputs with ``labels``."""
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in batches:
            labels = batch.pop("labels")
            predictions = model(**batch).logits.argmax(-1)
            correct += int((predictions == labels).sum())
            total += len(labels)
    model.train()
    return correct / max(total, 1)
