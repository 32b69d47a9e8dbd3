"""Sample generations after each evaluation: what the model answers to a few validation prompts, as training goes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..generation import generate_greedy
from ..registries import HOOKS
from . import distributed
from .hooks import Hook

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer

LOGGED = 2  # generations shown in the log after each evaluation; all go to the file
SHOWN_CHARS = 120


@HOOKS.register_module()
class GenerationHook(Hook):
    """After each evaluation, greedy generations for ``samples`` prompts of the validation set (its
    ``generation_examples(n)``) are appended to RUN_DIR/generations.jsonl by rank 0, the first two logged.

    Under FSDP every rank decodes the same prompts (each forward pass needs every shard); otherwise rank 0
    decodes alone while the others wait for its outcome (an error there stops every rank at once). A
    validation set without ``generation_examples`` gets none.
    """

    priority = 50

    def __init__(self, samples: int = 4, max_new_tokens: int = 64) -> None:
        if samples < 0 or max_new_tokens < 1:
            raise ConfigError(f"GenerationHook needs SAMPLES >= 0 and MAX_NEW_TOKENS >= 1, got {samples} and "
                              f"{max_new_tokens}")
        self.samples = samples
        self.max_new_tokens = max_new_tokens

    def after_evaluate(self, trainer: BaseTrainer, metrics: Mapping[str, float]) -> None:
        dataset = trainer.val_dataset
        if self.samples == 0 or not hasattr(dataset, "generation_examples"):
            return
        examples = dataset.generation_examples(self.samples)
        tokenizer = getattr(dataset, "tokenizer", None) or trainer.unwrapped_model.tokenizer
        sharded = trainer.strategy.shards_parameters
        failure: BaseException | None = None
        if sharded or trainer.rank == 0:
            try:
                with trainer.strategy.autocast():
                    generated = generate_greedy(trainer.unwrapped_model, [e["prompt_ids"] for e in examples],
                                                self.max_new_tokens, tokenizer.eos_token_id, synced=sharded,
                                                device=trainer.device)
            except Exception as error:  # noqa: BLE001 — re-raised below, once the waiting ranks know
                failure = error
        if not sharded:  # the others wait for rank 0's outcome, not for a timeout if it failed
            outcome = distributed.broadcast_object(None if failure is None else f"{type(failure).__name__}: {failure}")
            if outcome is not None and failure is None:
                raise RuntimeError(f"rank 0 failed while generating samples: {outcome}")
        if failure is not None:
            raise failure
        if trainer.rank == 0:
            texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
            self._record(trainer, examples, texts)

    @staticmethod
    def _record(trainer: BaseTrainer, examples: list[dict[str, Any]], texts: list[str]) -> None:
        rows = [{"step": trainer.global_step, "epoch": trainer.epoch, "prompt": example["prompt"], "generation": text,
                 "reference": example["reference"]} for example, text in zip(examples, texts)]
        with open(trainer.run_dir / "generations.jsonl", "a", encoding="utf-8") as file:
            file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        for row in rows[:LOGGED]:
            trainer.logger.info("generation at step %d: %s → %s", row["step"], _shorten(row["prompt"]),
                                _shorten(row["generation"]))


def _shorten(prompt: str | list[dict[str, str]]) -> str:
    """One line of at most SHOWN_CHARS characters; a conversation is shown by its last message."""
    text = prompt[-1]["content"] if isinstance(prompt, list) else prompt
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


__all__ = ["GenerationHook"]
