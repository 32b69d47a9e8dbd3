"""``transformers.Trainer`` with ``DataCollatorWithPadding``: its default random order, or ``--group-by-length``.

Same model, data (tokenized ahead with ``datasets.map``), batch size, max length, AdamW learning rate and
weight decay, warm-up ratio, clipping and precision as TrainLab's recipe; HF's default optimizer
implementation (``adamw_torch_fused``), no checkpoints, no reporting.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from benchmarks.common import StepClock, Workload, load_classifier, load_split, mode_arguments, pretokenize


class ClockCallback(TrainerCallback):
    """Feeds the step clock and keeps the last logged (window-mean) training loss."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self.final_loss: float | None = None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.clock.start_epoch()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.clock.tick()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if logs and "loss" in logs:
            self.final_loss = logs["loss"]


def main() -> None:
    parser = mode_arguments(__doc__)
    parser.add_argument("--group-by-length", action="store_true")
    args = parser.parse_args()
    workload = Workload.from_json(args.workload)
    model, tokenizer = load_classifier(workload)
    train = pretokenize(load_split(workload, "train"), tokenizer, workload.max_length)
    val = pretokenize(load_split(workload, "validation"), tokenizer, workload.max_length)
    clock = StepClock()
    callback = ClockCallback(clock)
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=workload.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=workload.lr,
            weight_decay=workload.weight_decay,
            warmup_steps=workload.warmup_ratio,  # a float below 1 is a ratio of the total steps
            max_grad_norm=workload.max_grad_norm,
            num_train_epochs=workload.epochs,
            logging_steps=workload.log_every,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            use_cpu=True,
            seed=workload.seed,
            disable_tqdm=True,
            train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[callback],
        )
        trainer.train()
        predictions = trainer.predict(val)
    correct = np.argmax(predictions.predictions, axis=-1) == predictions.label_ids
    clock.write(args.result, callback.final_loss, float(correct.mean()))


if __name__ == "__main__":
    main()
