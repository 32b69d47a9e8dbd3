"""The prototype's way: tokenize inside the training loop and pad every batch to 512 tokens.

Random order, per-step ``loss.item()`` logging, torch's default AdamW implementation; otherwise the same
model, data, batch size, learning rate, weight decay, clipping and schedule as the other modes. Every step
costs the same (always 512 tokens), so it stops after ``max_steps`` and is timed after its first step.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from benchmarks.common import (
    StepClock,
    Workload,
    accuracy,
    adamw,
    load_classifier,
    load_split,
    mode_arguments,
    warmup_linear,
)

PAD_TO = 512


def main() -> None:
    args = mode_arguments(__doc__).parse_args()
    workload = Workload.from_json(args.workload)
    model, tokenizer = load_classifier(workload)
    train, val = load_split(workload, "train"), load_split(workload, "validation")
    texts, labels = train["text"][:], train["label"][:]

    def encode(rows: list[str], row_labels: list[int]) -> dict[str, torch.Tensor]:
        batch = tokenizer(rows, padding="max_length", truncation=True, max_length=PAD_TO, return_tensors="pt")
        return {**batch, "labels": torch.tensor(row_labels)}

    loader = DataLoader(
        range(len(texts)),
        batch_size=workload.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(workload.seed),
    )
    total_steps = workload.max_steps or len(loader) * workload.epochs
    optimizer = adamw(model, workload)
    scheduler = warmup_linear(optimizer, total_steps, workload.warmup_ratio)
    clock, recent = StepClock(), []
    model.train()
    while len(clock.step_end_times) < total_steps:
        clock.start_epoch()
        for indices in loader:
            loss = model(**encode([texts[i] for i in indices], [labels[i] for i in indices])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), workload.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            recent = [*recent[-(workload.log_every - 1) :], loss.item()]
            clock.tick()
            if len(clock.step_end_times) == total_steps:
                break
    val_texts, val_labels = val["text"][:], val["label"][:]
    val_batches = (
        encode(val_texts[i : i + 64], val_labels[i : i + 64]) for i in range(0, len(val_texts), 64)
    )
    clock.write(args.result, sum(recent) / len(recent), accuracy(model, val_batches))


if __name__ == "__main__":
    main()
