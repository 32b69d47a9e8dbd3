"""TRAINER.DROPOUT_KERNEL ``fast``: dropout whose random mask costs a third of torch's on CPU.

On CPU, ``torch.nn.functional.dropout`` draws one Bernoulli sample per element through a scalar generator,
and ``scaled_dot_product_attention`` with ``dropout_p > 0`` leaves its fused kernel for a float32 math path
that draws one per attention probability. Profiled on a MiniLM training step (bf16, 16 × 120 tokens) these
draws were 32 % of the step. Here the mask comes from 64-bit draws of the same generator, each split into
four 16-bit uniforms compared with ``p`` (so ``p`` is honoured to 1/65536), and attention with dropout runs
as HF's eager attention does under autocast: scores in the input dtype, softmax in float32, then the mask.
Measured: 1.45 × a MiniLM step at 120 tokens, 1.32 × at 250 (docs/performance.md).

The replacement is a ``TorchFunctionMode`` the strategy holds around training, so every model gets it: HF
models, user modules calling ``F.dropout`` / ``nn.Dropout`` and ``F.scaled_dot_product_attention``. Masks
come from torch's default generator for the device, so seeds and resumes see the same masks. Activation
checkpointing recomputes the forward inside the backward pass, where no torch function mode is active, so
code under a checkpoint (recognised by its saved-tensor hooks, or, for the reentrant kind, by running without
grad) keeps torch's kernels in both passes. Anything else unusual (in-place dropout, tensor subclasses, nested
tensors, vmap, code being compiled) goes to torch's own kernel too.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

DROPOUT_KERNEL_CHOICES = ("auto", "fast", "native")


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A bool mask of ``shape`` whose elements are False with probability ``p`` (to 1/65536)."""
    count = math.prod(shape)
    bits = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    threshold = -32768 + round(p * 65536)  # a 16-bit uniform below this is dropped
    return (bits.view(torch.int16)[:count] >= threshold).view(shape)


class _ScaleKept(torch.autograd.Function):
    """``x * keep / (1 - p)`` saving only the bool mask for the backward pass (as torch's dropout does)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Training-mode dropout of ``x`` with drop probability ``p`` (``keep``: a given mask, for tests)."""
    if keep is None:
        keep = keep_mask(x.shape, p, x.device)
    return _ScaleKept.apply(x, keep, 1.0 / (1.0 - p))


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
              keep: torch.Tensor | None = None) -> torch.Tensor:
    """``scaled_dot_product_attention`` with training dropout: scores in the inputs' dtype, a float32 softmax
    (rows with every key masked give zeros, as torch's math path does), dropout, then the weighted values."""
    if enable_gqa and key.size(-3) != query.size(-3):
        groups = query.size(-3) // key.size(-3)
        key, value = key.repeat_interleave(groups, -3), value.repeat_interleave(groups, -3)
    scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    scores = torch.matmul(query * scale, key.transpose(-2, -1))
    if is_causal:
        attn_mask = torch.ones(query.size(-2), key.size(-2), dtype=torch.bool, device=query.device).tril_()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(attn_mask.logical_not(), float("-inf"))
        else:
            scores = scores + attn_mask
    probs = torch.ops.aten._safe_softmax(scores, -1, torch.float32).to(query.dtype)
    if dropout_p > 0.0:
        probs = dropout(probs, dropout_p, keep)
    return torch.matmul(probs, value)


_DROPOUT_ARGS = ("input", "p", "training", "inplace")
_TORCH_DROPOUT_ARGS = ("input", "p", "train")
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_SDPA_DEFAULTS = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False}


def _bind(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any] | None:
    if len(args) > len(names) or any(name not in names for name in kwargs):
        return None
    return {**defaults, **dict(zip(names, args)), **kwargs}


_functorch_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", lambda tensor: False)


def _plain(tensor: Any) -> bool:
    """A dense tensor outside vmap/grad transforms (whose randomness rules torch's own kernels follow)."""
    return type(tensor) is torch.Tensor and not tensor.is_nested and not _functorch_wrapped(tensor)


_saved_tensor_hooks = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)


def _replaceable() -> bool:
    """Whether this forward runs outside activation checkpointing and compilation (see the module doc)."""
    return (torch.is_grad_enabled() and _saved_tensor_hooks is not None and _saved_tensor_hooks(False) is None
            and not torch.compiler.is_compiling())


class FastDropout(TorchFunctionMode):
    """While active, training dropout and attention dropout use this module's kernels (see the module doc)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.dropout or func is torch.dropout:
            if func is F.dropout:
                call = _bind(_DROPOUT_ARGS, args, kwargs, {"p": 0.5, "training": True, "inplace": False})
            else:
                call = _bind(_TORCH_DROPOUT_ARGS, args, kwargs, {"inplace": False})
                if call is not None:
                    call["training"] = call.pop("train", True)
            if (call is not None and call["training"] and not call["inplace"] and 0.0 < call["p"] < 1.0
                    and _plain(call["input"]) and _replaceable()):
                return dropout(call["input"], call["p"])
        elif func is F.scaled_dot_product_attention:
            call = _bind(_SDPA_ARGS, args, kwargs, _SDPA_DEFAULTS)
            if (call is not None and 0.0 < call["dropout_p"] < 1.0
                    and not (call["is_causal"] and call["attn_mask"] is not None)
                    and all(_plain(call[name]) for name in ("query", "key", "value")) and _replaceable()):
                return attention(**call)
        return func(*args, **kwargs)


def resolve_dropout_kernel(requested: str, device: torch.device, compiled: bool) -> tuple[str, str]:
    """The dropout kernel to train with and why: ``auto`` is ``fast`` on CPU unless the model is compiled."""
    if requested != "auto":
        return requested, "set in TRAINER.DROPOUT_KERNEL"
    if compiled:
        return "native", "auto: the model is compiled"
    if device.type == "cpu":
        return "fast", "auto: CPU"
    return "native", f"auto: torch's dropout is fast on {device.type}"


def dropout_kernels(kernel: str) -> contextlib.AbstractContextManager:
    """The context training runs in for ``kernel`` (``fast``: FastDropout; ``native``: nothing changed)."""
    return FastDropout() if kernel == "fast" else contextlib.nullcontext()


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether ``model`` or a submodule was compiled in place (``nn.Module.compile``) or is a compiled wrapper."""
    return any(getattr(module, "_compiled_call_impl", None) is not None or hasattr(module, "_orig_mod")
               for module in model.modules())


__all__ = ["DROPOUT_KERNEL_CHOICES", "FastDropout", "attention", "dropout", "dropout_kernels", "is_compiled",
           "keep_mask", "resolve_dropout_kernel"]
