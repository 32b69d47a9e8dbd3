"""A minimal hand-written PyTorch loop: the overhead floor TrainLab is measured against.

Same model, data, batch size, max length, optimizer (AdamW, foreach), clipping, warm-up schedule and
precision as TrainLab's recipe (fp32, or ``--bf16`` autocast as its default picks on CPUs with native bf16); tokenized ahead of the loop, length-grouped batches with TrainLab's
default policy and seed, and dynamic padding. ``--fast-dropout`` trains under the dropout kernel TrainLab's
default picks on CPU (``trainlab.engine.dropout_kernels``), so the loops compare like with like.
``--lora`` adds rank-8 adapters on query/value with ``peft``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    StepClock,
    Workload,
    accuracy,
    adamw,
    length_grouped_batches,
    load_classifier,
    load_split,
    mode_arguments,
    pretokenize,
    warmup_linear,
)


def pad(rows: dict[str, list[Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Columns of one batch padded to its longest sequence: ``[batch, longest]``."""
    longest = max(len(ids) for ids in rows["input_ids"])
    batch = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key in rows:
            padded = torch.full(
                (len(rows[key]), longest), pad_id if key == "input_ids" else 0, dtype=torch.long
            )
            for row, values in enumerate(rows[key]):
                padded[row, : len(values)] = torch.tensor(values)
            batch[key] = padded
    batch["labels"] = torch.tensor(rows["label"])
    return batch


def add_lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=["query", "value"],
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, config)


def main() -> None:
    parser = mode_arguments(__doc__)
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--fast-dropout", action="store_true")
    args = parser.parse_args()
    workload = Workload.from_json(args.workload)
    model, tokenizer = load_classifier(workload)
    if args.lora:
        model = add_lora(model)
    train = pretokenize(load_split(workload, "train"), tokenizer, workload.max_length)
    val = pretokenize(load_split(workload, "validation"), tokenizer, workload.max_length)
    lengths = np.asarray(train["length"][:])
    steps_per_epoch = -(-len(train) // workload.batch_size)
    optimizer = adamw(model, workload, foreach=True)
    scheduler = warmup_linear(optimizer, steps_per_epoch * workload.epochs, workload.warmup_ratio)
    params = [p for p in model.parameters() if p.requires_grad]
    clock = StepClock()
    model.train()
    kernels = contextlib.nullcontext()
    if args.fast_dropout:
        from trainlab.engine.dropout_kernels import FastDropout

        kernels = FastDropout()
    with kernels:
        final_loss = train_epochs(model, tokenizer, train, lengths, workload, optimizer, scheduler, params, clock, args.bf16)
    val_batches = (pad(val[i : i + 64], tokenizer.pad_token_id) for i in range(0, len(val), 64))
    clock.write(args.result, final_loss, accuracy(model, val_batches))


def train_epochs(model: Any, tokenizer: Any, train: Any, lengths: Any, workload: Workload, optimizer: Any,
                 scheduler: Any, params: list[Any], clock: StepClock, bf16: bool) -> float | None:
    """Every epoch of the loop; returns the last logging window's mean loss."""
    window, final_loss = torch.zeros(()), None
    for epoch in range(workload.epochs):
        clock.start_epoch()
        for indices in length_grouped_batches(lengths, workload.batch_size, workload.seed, epoch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**pad(train[indices], tokenizer.pad_token_id)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, workload.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            window += loss.detach()
            clock.tick()
            if len(clock.step_end_times) % workload.log_every == 0:
                final_loss = (window / workload.log_every).item()  # the one host sync per logging window
                window.zero_()
    return final_loss


if __name__ == "__main__":
    main()
