"""The single-device strategy, which every backend extends: it owns the placed model, the optimizer over it,
how a step runs (autocast, backward, clipping, stepping) and the state I/O of both.

The loop, the checkpointer, evaluation and the hooks only talk to a strategy; a new backend (FSDP, ...) is
a subclass in one new file registered in STRATEGIES, with no edit elsewhere in the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ...registries import STRATEGIES
from ...utils.modules import unwrap_model
from .. import distributed
from ..checkpoint_files import MODEL_FILE, SHARDED_DIR, STATE_FILE
from ..dropout_kernels import dropout_kernels, is_compiled, resolve_dropout_kernel
from ..precision import resolve_precision

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@STRATEGIES.register_module(name=["single", "Strategy"])
class Strategy:
    """One process, one device (also each replica of an evaluation job).

    Lifecycle: ``setup(model)`` places (and, in subclasses, wraps) the model; ``build_optimizer`` builds the
    optimizer over the parameters the strategy manages. Afterwards ``model`` is what the loop calls and
    ``module`` the user's model inside any wrapper.
    """

    shards_parameters = False  # True where a forward pass needs every rank (generation then runs in lockstep)

    def __init__(self, device: torch.device, precision: str = "fp32", dropout_kernel: str = "auto") -> None:
        if precision not in PRECISIONS and precision != "auto":
            raise ConfigError(f"TRAINER.PRECISION must be auto or one of {', '.join(PRECISIONS)}, got '{precision}'")
        precision, self.precision_reason = resolve_precision(precision, device)
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError("TRAINER.PRECISION fp16 needs a CUDA device; use bf16 (works on CPU) or fp32")
        self.device = device
        self.precision = precision
        self.autocast_dtype = PRECISIONS[precision]
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.requested_dropout_kernel = dropout_kernel
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    # ------------------------------------------------------------------ placing the model and its optimizer
    def setup(self, model: nn.Module) -> nn.Module:
        """Place ``model`` on the device and wrap it for this backend; returns what the loop calls."""
        self.model = self.wrap(model.to(self.device))
        return self.model

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    @property
    def module(self) -> nn.Module:
        """The user's model inside any wrapper (where its weights, adapters and policies live)."""
        return self.unwrap(self.model)

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        return unwrap_model(model)

    def build_optimizer(self, name: str, kwargs: Mapping[str, Any]) -> torch.optim.Optimizer:
        """The optimizer ``name`` over the trainable parameters this strategy manages."""
        from ...optim import build_optimizer

        self.optimizer = build_optimizer(self.module, name, kwargs)
        return self.optimizer

    # ------------------------------------------------------------------ one step
    @property
    def dropout_kernel(self) -> tuple[str, str]:
        """The dropout kernel training uses (TRAINER.DROPOUT_KERNEL resolved for this device and model) and why."""
        compiled = self.model is not None and is_compiled(self.model)
        return resolve_dropout_kernel(self.requested_dropout_kernel, self.device, compiled)

    def training_kernels(self) -> contextlib.AbstractContextManager:
        """The context a training epoch runs in: the dropout kernel of ``dropout_kernel``."""
        return dropout_kernels(self.dropout_kernel[0])

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def no_sync(self, enabled: bool) -> Iterator[None]:
        """Skip gradient synchronisation for accumulation micro-steps (nothing to skip on one device)."""
        yield

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def clip_gradients(self, max_norm: float) -> torch.Tensor:
        """Clip the global gradient norm of every managed parameter to ``max_norm``; returns the norm before."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def optimizer_step(self, max_grad_norm: float) -> torch.Tensor | None:
        """Unscale, clip, step and zero the gradients; returns the gradient norm before clipping (None when not clipping)."""
        optimizer = self.optimizer
        grad_norm = None
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if max_grad_norm > 0:
            grad_norm = self.clip_gradients(max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return grad_norm

    # ------------------------------------------------------------------ state
    def model_state_dict(self) -> dict[str, torch.Tensor]:
        """The full model state (collective in sharded subclasses: call it on every rank)."""
        return self.module.state_dict()

    def local_model_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The full model state if this process holds it without talking to the others, else None.

        Used by code that runs on one rank only (the prototype's ``save_best_model`` under ``if rank == 0``).
        """
        return self.module.state_dict()

    def gather_state(self, select: Callable[[str], bool]) -> dict[str, torch.Tensor]:
        """The full tensors of the state entries whose names ``select`` picks, on rank 0 (empty elsewhere).

        Call it on every rank: sharded subclasses gather each tensor from all of them.
        """
        if not distributed.is_main_process():
            return {}
        return {name: tensor.detach().cpu() for name, tensor in self.module.state_dict().items() if select(name)}

    def parameter_shapes(self) -> dict[str, list[int]]:
        return {name: list(tensor.shape) for name, tensor in self.module.state_dict().items()}

    def save_checkpoint(self, directory: Path, state: Mapping[str, Any]) -> None:
        """Write the model, optimizer and scaler state plus the engine's ``state`` into ``directory``.

        Called on every rank; here rank 0 writes everything (every rank holds the same replica). The optimizer
        state is keyed by parameter names, so any strategy (and any world size) can load it.
        """
        optimizer_state = self.full_optimizer_state_dict()
        if not distributed.is_main_process():
            return
        from safetensors.torch import save_model

        save_model(self.module, str(directory / MODEL_FILE))
        extra = {"optimizer": optimizer_state, "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        torch.save({**extra, **state}, directory / STATE_FILE)

    def full_optimizer_state_dict(self) -> dict[str, Any] | None:
        """The optimizer's whole state keyed by parameter names (collective in sharded subclasses)."""
        if self.optimizer is None:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        try:
            return get_optimizer_state_dict(self.model, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        except (KeyError, ValueError, RuntimeError):
            # The trainer changed its model after building the optimizer (a prototype loop merging its LoRA
            # layers): parameters have no names any more; keep the state by position, as torch does.
            return self.optimizer.state_dict()

    def load_checkpoint(self, directory: Path) -> dict[str, Any]:
        """Restore the model, optimizer and scaler from ``directory``, written by this or any other strategy at
        any world size; returns the engine's state saved with them."""
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        optimizer_state, scaler_state = state.pop("optimizer", None), state.pop("scaler", None)
        if (directory / SHARDED_DIR).is_dir():
            self._load_sharded(directory / SHARDED_DIR)
        else:
            self.load_weights(directory / MODEL_FILE)
            if self.optimizer is not None and optimizer_state is not None:
                self._load_full_optimizer_state(optimizer_state)
        if self.scaler is not None and scaler_state is not None:
            self.scaler.load_state_dict(scaler_state)
        return state

    def _load_sharded(self, path: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_state, optimizer_state = get_state_dict(self.model, self.optimizer)  # this layout, filled by dcp.load
        dcp.load({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(path))
        set_state_dict(self.model, self.optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state)

    def _load_full_optimizer_state(self, optimizer_state: dict[str, Any]) -> None:
        if all(isinstance(key, int) for key in optimizer_state.get("state", {})):  # keyed by position (older runs)
            self.optimizer.load_state_dict(optimizer_state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.model, self.optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))

    def load_checkpoint_weights(self, directory: Path) -> None:
        """Load only the model weights of the checkpoint in ``directory`` (e.g. the best one, at the end)."""
        if not (directory / SHARDED_DIR).is_dir():
            self.load_weights(directory / MODEL_FILE)
            return
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

        model_state = get_model_state_dict(self.model)
        dcp.load({"model": model_state}, checkpoint_id=str(directory / SHARDED_DIR))
        set_model_state_dict(self.model, model_state)

    def load_weights(self, file: Path, strict: bool = True) -> tuple[list[str], list[str]]:
        """Load model weights only from a safetensors ``file``; returns (missing, unexpected) keys."""
        from safetensors.torch import load_model

        return load_model(self.module, str(file), strict=strict, device=str(self.device))

    def export(self, run_dir: Path, filename: str) -> Path:
        """Write the full model to ``run_dir/filename`` and, for HF models, ``run_dir/model`` (save_pretrained).

        Called on every rank; rank 0 writes.
        """
        target = run_dir / filename
        if distributed.is_main_process():
            from safetensors.torch import save_model

            from ..checkpoint_files import write_text_atomic

            tmp = target.with_name(f".{target.name}.tmp")
            save_model(self.module, str(tmp))
            tmp.replace(target)
            if hasattr(self.module, "save_pretrained"):
                self.module.save_pretrained(str(run_dir / "model"))
                write_text_atomic(run_dir / "model" / ".complete", "")
        return target


def resolve_device(device: str) -> torch.device:
    """``auto`` → this process's CUDA device when there is one, else CPU."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"TRAINER.DEVICE must be auto, cpu or cuda, got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("TRAINER.DEVICE is cuda but no CUDA device is visible; set TRAINER.DEVICE auto or cpu")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", distributed.get_local_rank() % torch.cuda.device_count())


__all__ = ["PRECISIONS", "Strategy", "resolve_device"]
