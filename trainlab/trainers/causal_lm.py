"""Causal-LM fine-tuning (full, LoRA or PEFT through the model config), evaluated by token-level loss and perplexity."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.base_trainer import BaseTrainer
from ..engine.hooks import Hook
from ..metrics import Perplexity
from ..registries import TRAINERS


@TRAINERS.register_module()
class CausalLMTrainer(BaseTrainer):
    """Next-token prediction on ``input_ids`` with ``labels`` (-100 where no loss is taken).

    Training uses the model's own loss. Evaluation sums token log-likelihoods, so ``val/loss`` and
    ``val/perplexity`` are per-token means over the whole set, the same for any batch size and process count.
    At each evaluation, greedy generations for ``GENERATE_SAMPLES`` validation prompts (``MAX_NEW_TOKENS``
    each) go to RUN_DIR/generations.jsonl and the log. Packed batches (DATASET.*.PACKING) carry
    ``position_ids`` and no attention mask; the run checks once that the model keeps packed examples apart.
    """

    def __init__(self, model: nn.Module | None = None, *, generate_samples: int = 4, max_new_tokens: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.generate_samples = generate_samples
        self.max_new_tokens = max_new_tokens

    def default_hooks(self) -> list[Hook]:
        from ..engine.generation_hook import GenerationHook

        hooks = [*super().default_hooks(), PackingCheckHook()]
        return [*hooks, GenerationHook(self.generate_samples, self.max_new_tokens)] if self.generate_samples else hooks

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch, use_cache=False).loss

    def eval_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        labels = batch["labels"]
        logits = self.model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
        shifted_logits, shifted_labels = logits[:, :-1].float(), labels[:, 1:]  # position t predicts token t+1
        token_nll = F.cross_entropy(shifted_logits.transpose(1, 2), shifted_labels, ignore_index=-100, reduction="none")
        counted = (shifted_labels != -100).sum(dim=1)
        nll_sum = token_nll.sum(dim=1)
        tokens = counted.sum()
        loss = nll_sum.sum() / tokens.clamp(min=1)
        return {"loss": loss, "loss_weight": tokens, "token_nll_sum": nll_sum, "token_count": counted}

    def build_metrics(self) -> Perplexity:
        return Perplexity()


class PackingCheckHook(Hook):
    """Before training on packed data, check that packed examples cannot attend to each other.

    transformers builds a block-diagonal causal mask from restarting ``position_ids`` when no attention mask
    is given (eager, sdpa and flex attention; flash-attention reads the position ids directly). A model whose
    attention ignores them (some remote-code models) would let every example see the ones packed before it:
    that is reported as a warning, with the fix.
    """

    priority = 10

    def before_train(self, trainer: BaseTrainer) -> None:
        if not any(getattr(data, "packing", False) for data in (trainer.train_dataset, trainer.val_dataset)):
            return
        if attends_across_packed_examples(trainer.model, trainer.device):
            implementation = getattr(getattr(trainer.unwrapped_model, "config", None), "_attn_implementation", "?")
            trainer.logger.warning(
                "PACKING: this model (attention implementation '%s') lets packed examples attend to each other; "
                "losses are not those of separate examples. Set DATASET.*.PACKING false, or load the model with "
                "an attention implementation that honours position_ids (MODEL.ATTN_IMPLEMENTATION sdpa, eager or "
                "flash_attention_2)", implementation)
        else:
            trainer.logger.info("PACKING: packed examples are kept apart (block-diagonal attention from position_ids)")


@torch.no_grad()
def attends_across_packed_examples(model: nn.Module, device: torch.device) -> bool:
    """Whether the last of two packed examples sees the first: its logits change when only the first changes."""
    was_training = model.training
    model.eval()
    positions = torch.tensor([[0, 1, 2, 0, 1, 2]], device=device)
    outputs = []
    for first in ((11, 12, 13), (21, 22, 23)):
        ids = torch.tensor([[*first, 31, 32, 33]], device=device)
        outputs.append(model(input_ids=ids, position_ids=positions, use_cache=False).logits[0, 3:].float())
    model.train(was_training)
    scale = outputs[0].abs().max().clamp(min=1e-6)
    return bool(((outputs[0] - outputs[1]).abs().max() / scale) > 1e-4)
