"""Causal-LM fine-tuning (full, LoRA or PEFT through the model config), evaluated by token-level perplexity."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..engine.base_trainer import BaseTrainer
from ..metrics import Perplexity
from ..registries import TRAINERS


@TRAINERS.register_module()
class CausalLMTrainer(BaseTrainer):
    """Next-token prediction on ``input_ids`` with ``labels`` (-100 where no loss is taken).

    Training uses the model's own loss; evaluation sums token log-likelihoods so that perplexity is
    per token over the whole set, whatever the batch and shard sizes.
    """

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss

    def eval_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        labels = batch["labels"]
        logits = self.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        shifted_logits, shifted_labels = logits[:, :-1].float(), labels[:, 1:]  # position t predicts token t+1
        token_nll = F.cross_entropy(shifted_logits.transpose(1, 2), shifted_labels, ignore_index=-100, reduction="none")
        counted = (shifted_labels != -100).sum(dim=1)
        nll_sum = token_nll.sum(dim=1)
        loss = nll_sum.sum() / counted.sum().clamp(min=1)
        return {"loss": loss, "token_nll_sum": nll_sum, "token_count": counted}

    def build_metrics(self) -> Perplexity:
        return Perplexity()
