"""How the model is placed, wrapped, and stepped: one small class per backend, so the loop never branches on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ...errors import ConfigError
from ..distributed import get_local_rank, get_world_size

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Strategy:
    """Single-device training; subclasses change wrapping and gradient synchronisation."""

    def __init__(self, device: torch.device, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"TRAINER.PRECISION must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError("TRAINER.PRECISION fp16 needs a CUDA device; use bf16 (works on CPU) or fp32")
        self.device = device
        self.precision = precision
        self.autocast_dtype = PRECISIONS[precision]
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def wrap(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        """Skip gradient synchronisation for accumulation micro-steps (no-op on one device)."""
        yield

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer, model: nn.Module, max_grad_norm: float) -> torch.Tensor | None:
        """Unscale, clip, and step; returns the gradient norm before clipping (None when not clipping)."""
        grad_norm = None
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if max_grad_norm > 0:
            params = [p for p in model.parameters() if p.grad is not None]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return grad_norm


class DDPStrategy(Strategy):
    """DistributedDataParallel over the process group (gloo on CPU, nccl on CUDA)."""

    def __init__(self, device: torch.device, precision: str = "fp32", find_unused_parameters: bool = False) -> None:
        super().__init__(device, precision)
        self.find_unused_parameters = find_unused_parameters

    def wrap(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError("the model has no trainable parameter: check MODEL.FREEZE / LORA settings")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters
        )

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, enabled: bool) -> Iterator[None]:
        if enabled and isinstance(model, nn.parallel.DistributedDataParallel):
            with model.no_sync():
                yield
        else:
            yield


def resolve_device(device: str) -> torch.device:
    """``auto`` → this process's CUDA device when there is one, else CPU."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"TRAINER.DEVICE must be auto, cpu or cuda, got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("TRAINER.DEVICE is cuda but no CUDA device is visible; set TRAINER.DEVICE auto or cpu")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", get_local_rank() % torch.cuda.device_count())


def build_strategy(device: torch.device, precision: str, find_unused_parameters: bool) -> Strategy:
    if get_world_size() > 1:
        return DDPStrategy(device, precision, find_unused_parameters)
    return Strategy(device, precision)
