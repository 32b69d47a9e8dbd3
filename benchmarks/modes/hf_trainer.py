"""``transformers.Trainer`` with ``DataCollatorWithPadding``: its default random order, or ``--group-by-length``;
fp32, or ``--bf16`` (autocast, also on CPU) and/or ``--compile`` (``torch_compile=True``).

Same model, data (tokenized ahead with ``datasets.map``), batch size, max length, AdamW learning rate and
weight decay, warm-up ratio and clipping as TrainLab's recipe; HF's default optimizer implementation
(``adamw_torch_fused``). The same work as TrainLab's recipe around the steps: evaluation (accuracy, macro F1)
and a checkpoint after every epoch, the best checkpoint by F1 loaded at the end, the final model saved,
predictions on the validation and test splits. No reporting.
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


def accuracy_and_f1(prediction: Any) -> dict[str, float]:
    """Validation accuracy and macro F1 (TrainLab's recipe monitors macro F1)."""
    predicted, labels = np.argmax(prediction.predictions, axis=-1), prediction.label_ids
    f1s = []
    for label in np.unique(np.concatenate([labels, predicted])):
        tp = np.sum((predicted == label) & (labels == label))
        precision = tp / max(np.sum(predicted == label), 1)
        recall = tp / max(np.sum(labels == label), 1)
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return {"accuracy": float(np.mean(predicted == labels)), "f1": float(np.mean(f1s))}


def main() -> None:
    parser = mode_arguments(__doc__)
    parser.add_argument("--group-by-length", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    workload = Workload.from_json(args.workload)
    model, tokenizer = load_classifier(workload)
    train = pretokenize(load_split(workload, "train"), tokenizer, workload.max_length)
    val = pretokenize(load_split(workload, "validation"), tokenizer, workload.max_length)
    test = pretokenize(load_split(workload, "test"), tokenizer, workload.max_length)
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
            save_strategy="epoch",
            eval_strategy="epoch",
            load_best_model_at_end=True,
            metric_for_best_model="f1",
            bf16=args.bf16,
            torch_compile=args.compile,
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
            eval_dataset=val,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[callback],
            compute_metrics=accuracy_and_f1,
        )
        trainer.train()
        trainer.save_model(f"{output_dir}/model")
        predictions = trainer.predict(val)
        trainer.predict(test)
    correct = np.argmax(predictions.predictions, axis=-1) == predictions.label_ids
    clock.write(args.result, callback.final_loss, float(correct.mean()))


if __name__ == "__main__":
    main()
