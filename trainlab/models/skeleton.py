"""Build a model's structure without its weights: parameters on the ``meta`` device, buffers real.

With a sharded strategy only one process per job needs the pretrained weights in host memory: the others build
this skeleton (no memory for parameters) and receive their shards from rank 0. Buffers stay real because
non-persistent ones (rotary frequencies, position ids) are computed in constructors and are in no checkpoint.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import nn

_SKELETON = contextvars.ContextVar("skeleton", default=False)


@contextlib.contextmanager
def model_skeleton(enabled: bool = True) -> Iterator[None]:
    """Models built inside get their parameters on ``meta``; HF loaders build from the config, not the weights."""
    if not enabled:
        yield
        return
    token = _SKELETON.set(True)
    original = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
        _SKELETON.reset(token)


def building_skeleton() -> bool:
    """Whether a model built now is a skeleton (loaders then skip reading the weights)."""
    return _SKELETON.get()


def is_skeleton(model: nn.Module) -> bool:
    return any(param.device.type == "meta" for param in model.parameters())


def materialize(model: nn.Module, device: torch.device) -> None:
    """Give a (sharded) skeleton real, uninitialised storage for its parameters; its buffers keep their values."""
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    model.to_empty(device=device)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name])


__all__ = ["building_skeleton", "is_skeleton", "materialize", "model_skeleton"]
