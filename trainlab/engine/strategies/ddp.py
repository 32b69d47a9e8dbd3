"""DistributedDataParallel: a full replica per process, gradients averaged across processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ...errors import ConfigError
from ...registries import STRATEGIES
from .base import Strategy


@STRATEGIES.register_module(name=["ddp", "DDPStrategy"])
class DDPStrategy(Strategy):
    """DDP over the process group (gloo on CPU, nccl on CUDA); rank 0 writes checkpoints (replicas are equal)."""

    def __init__(self, device: torch.device, precision: str = "fp32", find_unused_parameters: bool = False,
                 dropout_kernel: str = "auto") -> None:
        from .. import distributed

        if not distributed.is_distributed():
            raise ConfigError("TRAINER.STRATEGY ddp needs several processes: start them with --nproc N (or --gpus), "
                              "or use STRATEGY auto / single for one process")
        super().__init__(device, precision, dropout_kernel)
        self.find_unused_parameters = find_unused_parameters

    def wrap(self, model: nn.Module) -> nn.Module:
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError("the model has no trainable parameter: check MODEL.FREEZE / LORA settings")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters
        )

    @contextlib.contextmanager
    def no_sync(self, enabled: bool) -> Iterator[None]:
        if enabled and isinstance(self.model, nn.parallel.DistributedDataParallel):
            with self.model.no_sync():
                yield
        else:
            yield
