"""Greedy decoding of a causal LM as TrainLab holds it: a Hugging Face model, a PEFT model, a
``TransformersModelWrapper`` around either, or the FSDP-sharded root of one.

The loop calls ``model`` itself, one prompt at a time with its KV cache, rather than ``transformers``'
``generate``: calling the model runs a sharded root's hooks (an inner module's ``generate`` would meet
parameters it cannot use); a checkpoint's ``generation_config.json`` (repetition penalties, forced
tokens) cannot turn greedy decoding into something else; and no padding can make a prompt's tokens
depend on its neighbours in a batch.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch import nn

from .engine import distributed


def generate_greedy(model: nn.Module, prompts: list[list[int]], max_new_tokens: int,
                    eos_token_id: int | Collection[int] | None, *, synced: bool = False,
                    device: torch.device | None = None) -> list[list[int]]:
    """The new tokens of each prompt, taken by argmax, up to and including EOS or ``max_new_tokens`` of them.

    ``synced``: the model is sharded across the process group (FSDP), so every forward pass is collective.
    Every rank passes the same prompts and takes rank 0's tokens, so all ranks run the same passes.
    ``device``: where the inputs go (default: that of the model's first parameter).
    The model runs in eval mode under ``torch.no_grad``; its train/eval mode is restored afterwards.
    """
    stop = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id or ())
    device = device or next(model.parameters()).device
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [_decode(model, prompt, max_new_tokens, stop, synced, device) for prompt in prompts]
    finally:
        model.train(training)


def _decode(model: nn.Module, prompt: list[int], max_new_tokens: int, stop: set[int], synced: bool,
            device: torch.device) -> list[int]:
    if not prompt:
        raise ValueError("generate_greedy got an empty prompt: every prompt needs at least one token")
    input_ids = torch.tensor([prompt], device=device)  # [1, prompt length], then [1, 1] per new token
    cache: dict[str, Any] = {}
    new: list[int] = []
    while len(new) < max_new_tokens and not (new and new[-1] in stop):
        outputs = model(input_ids=input_ids, use_cache=True, **cache)
        token = int(outputs.logits[0, -1].argmax())
        if synced:  # rank 0's choice, so that every rank stops after the same pass
            token = distributed.broadcast_object(token)
        new.append(token)
        # The KV cache goes back under the name the model returned it by: `cache` since transformers 5.24,
        # `past_key_values` before.
        name = "cache" if "cache" in outputs else "past_key_values"
        cache = {name: outputs[name]}
        input_ids = torch.tensor([[token]], device=device)
    return new


__all__ = ["generate_greedy"]
