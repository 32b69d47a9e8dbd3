"""FSDP2: every rank holds a shard of each parameter, its gradient and its optimizer state.

Each transformer block (the HF model's ``_no_split_modules``, or TRAINER.FSDP_LAYER_CLASSES) is sharded with
``torch.distributed.fsdp.fully_shard``, then the root; a block's full parameters exist only while it runs.
Checkpoints are sharded (``torch.distributed.checkpoint``), so they reload at another world size; the
exported model is gathered one tensor at a time into rank 0.
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
from .. import distributed
from ..checkpoint_files import SHARDED_DIR, STATE_FILE
from .base import Strategy


@STRATEGIES.register_module(name=["fsdp", "FSDPStrategy"])
class FSDPStrategy(Strategy):
    """Fully sharded data parallel (FSDP2) over all processes; gloo on CPU, nccl on CUDA.

    Args:
        precision: ``bf16`` keeps fp32 master weights and optimizer state, computes in bf16 and reduces
            gradients in fp32 (``MixedPrecisionPolicy``); ``fp32`` computes in fp32.
        fsdp_reshard_after_forward: free a block's gathered parameters after its forward (less memory, one
            more all-gather in backward).
        fsdp_cpu_offload: keep parameter shards, gradients and optimizer state in host memory.
        fsdp_layer_classes: class names of the blocks to shard one by one; default: the model's
            ``_no_split_modules``.
    """

    loads_from_rank0 = True  # ranks other than 0 build a weightless skeleton (trainlab.models.skeleton)
    needs_process_group = True  # the device mesh is one, even for a single process
    shards_parameters = True  # each forward gathers every rank's shards: all ranks run it together

    def __init__(self, device: torch.device, precision: str = "fp32", fsdp_reshard_after_forward: bool = True,
                 fsdp_cpu_offload: bool = False, fsdp_layer_classes: list[str] | None = None,
                 dropout_kernel: str = "auto") -> None:
        if precision == "fp16":
            raise ConfigError("TRAINER.PRECISION fp16 is not supported with STRATEGY fsdp; use bf16 (no loss scaling needed)")
        super().__init__(device, precision, dropout_kernel)
        from torch.distributed.fsdp import MixedPrecisionPolicy

        self.autocast_dtype = None  # FSDP casts the gathered parameters itself
        self.mp_policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                          if self.precision == "bf16" else MixedPrecisionPolicy())
        self.reshard_after_forward = fsdp_reshard_after_forward
        self.cpu_offload = fsdp_cpu_offload
        self.layer_classes = list(fsdp_layer_classes or [])
        self.mesh: Any = None

    # ------------------------------------------------------------------ sharding
    def setup(self, model: nn.Module) -> nn.Module:
        """Shard ``model`` where it is (fully_shard moves each shard to the device), never a full copy on the device.

        Ranks that built a skeleton (parameters on ``meta``, see trainlab.models.skeleton) get real storage for
        their shards, and rank 0 broadcasts the weights tensor by tensor: one full copy per job in host memory.
        """
        from ...models.skeleton import is_skeleton, materialize

        skeleton = is_skeleton(model)
        any_skeleton = distributed.all_reduce_min(torch.tensor(0.0 if skeleton else 1.0, device=self.device)).item() == 0.0
        full = model.state_dict() if any_skeleton and distributed.is_main_process() else {}
        self.model = self.wrap(model)
        if skeleton:
            materialize(self.model, self.device)
        if any_skeleton:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(self.model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        return self.model

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError("the model has no trainable parameter: check MODEL.FREEZE / LORA settings")
        self.mesh = init_device_mesh(self.device.type, (distributed.get_world_size(),))
        options = {"mesh": self.mesh, "mp_policy": self.mp_policy, "reshard_after_forward": self.reshard_after_forward,
                   "offload_policy": CPUOffloadPolicy(pin_memory=self.device.type == "cuda") if self.cpu_offload else OffloadPolicy()}
        names = set(self.layer_classes) or block_class_names(model)
        blocks = [module for module in model.modules() if type(module).__name__ in names]
        if not blocks:
            wanted = ", ".join(sorted(names)) or "the model's _no_split_modules"
            raise ConfigError(f"STRATEGY fsdp found no block to shard in {type(model).__name__} (looked for {wanted}); "
                              f"name the transformer block classes in TRAINER.FSDP_LAYER_CLASSES")
        for block in blocks:
            fully_shard(block, **options)
        fully_shard(model, **options)
        return model

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        return model  # fully_shard changes the module in place; its names and methods stay

    @contextlib.contextmanager
    def no_sync(self, enabled: bool) -> Iterator[None]:
        """Accumulate unsharded gradients locally; reduce-scatter only at the accumulation boundary."""
        if not enabled:
            yield
            return
        self.model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            self.model.set_requires_gradient_sync(True)

    def clip_gradients(self, max_norm: float) -> torch.Tensor:
        norm = super().clip_gradients(max_norm)  # DTensor gradients: the norm is global across the shards
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    # ------------------------------------------------------------------ state
    def local_model_state_dict(self) -> dict[str, torch.Tensor] | None:
        return None  # the full model exists only by gathering from every rank

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        """The full model on rank 0 (empty elsewhere), gathered one tensor at a time; collective."""
        return gather_full_state(self.module)

    def gather_state(self, select: Callable[[str], bool]) -> dict[str, torch.Tensor]:
        return gather_full_state(self.module, select)

    def save_checkpoint(self, directory: Path, state: Mapping[str, Any]) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optimizer_state = get_state_dict(self.model, self.optimizer)
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(directory / SHARDED_DIR))
        if distributed.is_main_process():
            torch.save(dict(state), directory / STATE_FILE)

    def load_weights(self, file: Path, strict: bool = True) -> tuple[list[str], list[str]]:
        """Model weights from a safetensors file into the shards, one tensor at a time."""
        from safetensors import safe_open
        from torch.distributed.tensor import distribute_tensor

        params = {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}
        with safe_open(str(file), framework="pt") as handle:
            names = list(handle.keys())
            for name in names:
                target = params.get(name)
                if target is None:
                    continue
                full = handle.get_tensor(name)
                with torch.no_grad():
                    if hasattr(target, "placements"):
                        local = distribute_tensor(full.to(target.dtype), target.device_mesh, target.placements)
                        target.to_local().copy_(local.to_local())
                    else:
                        target.copy_(full)
        missing, unexpected = sorted(set(params) - set(names)), sorted(set(names) - set(params))
        if strict and (missing or unexpected):
            raise ConfigError(f"{file} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return missing, unexpected

    def export(self, run_dir: Path, filename: str) -> Path:
        """Gather the full model into rank 0 tensor by tensor (one full copy at most), then write it like
        the single-device strategy: ``run_dir/filename`` and, for HF models, ``run_dir/model``."""
        full = gather_full_state(self.module)
        target = run_dir / filename
        if distributed.is_main_process():
            from safetensors.torch import save_file

            from ..checkpoint_files import write_text_atomic

            tmp = target.with_name(f".{target.name}.tmp")
            save_file({k: v.contiguous() for k, v in full.items()}, str(tmp))
            tmp.replace(target)
            save_pretrained = getattr(self.module, "save_pretrained", None)
            if save_pretrained is not None:
                save_pretrained(str(run_dir / "model"), state_dict=full)
                write_text_atomic(run_dir / "model" / ".complete", "")
        return target


def block_class_names(model: nn.Module) -> set[str]:
    """The transformer block classes HF models declare in ``_no_split_modules`` (on any submodule)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return names


def gather_full_state(module: nn.Module, select: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``module``'s state dict (those ``select`` picks) in full, kept on rank 0's CPU only;
    gathered one tensor at a time, so no rank ever holds more than one full copy."""
    full = {}
    main = distributed.is_main_process()
    for name, tensor in module.state_dict().items():
        if select is not None and not select(name):
            continue
        value = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
        if main:
            full[name] = value.detach().to("cpu", copy=True)
        del value
    return full
