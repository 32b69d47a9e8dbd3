"""TRAINER.PRECISION ``auto``: bf16 where the hardware computes it natively (measured faster at equal accuracy),
fp32 elsewhere — chosen once per process and said in the run's first lines."""

from __future__ import annotations

import torch

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


def native_bf16(device: torch.device) -> str | None:
    """Why ``device`` computes bf16 natively (a short reason), or None when it does not."""
    if device.type == "cuda":
        return "a GPU with bf16 support" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        if cpu is not None and getattr(cpu, "_is_amx_tile_supported", lambda: False)():
            return "a CPU with AMX"
        if cpu is not None and getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
            return "a CPU with AVX-512 BF16"
    return None


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """The precision to train in and why: ``auto`` becomes bf16 on hardware with native bf16, else fp32."""
    if precision != "auto":
        return precision, "set in TRAINER.PRECISION"
    reason = native_bf16(device)
    if reason:
        return "bf16", f"auto: {reason}"
    return "fp32", f"auto: no native bf16 on this {device.type}"


__all__ = ["PRECISION_CHOICES", "native_bf16", "resolve_precision"]
