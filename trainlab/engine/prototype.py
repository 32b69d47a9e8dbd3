"""The prototype's calling conventions, translated once so the rest of the engine never sees them.

Prototype trainers call ``super().__init__(model, log_queue, [project_name,] loss_fn, epochs, optimizer_class,
optimizer_kwargs, scheduler_class, scheduler_kwargs, save, output_dir, output_filename)`` positionally,
``prepare_dataloader(dataset, rank, world_size, batch_size=8, collate_fn=None, shuffle=True)``, and keep the
best weights as ``{OUTPUT_FILENAME}_epoch_{N}.pt`` through ``save_best_model``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

POSITIONAL_SETTINGS = ("log_queue", "project_name", "loss_fn", "epochs", "optimizer_class", "optimizer_kwargs",
                       "scheduler_class", "scheduler_kwargs", "save", "output_dir", "output_filename")


def positional_arguments(args: Sequence[Any], owner: str) -> dict[str, Any]:
    """The prototype's positional constructor arguments (after ``model``) by name, with or without project_name."""
    names = list(POSITIONAL_SETTINGS)
    if not _has_project_name(args):
        names.remove("project_name")
    if len(args) > len(names):
        raise TypeError(f"{owner}() takes at most {len(names) + 1} positional arguments (model, {', '.join(names)}), "
                        f"got {len(args) + 1}")
    return dict(zip(names, args))


def _has_project_name(args: Sequence[Any]) -> bool:
    # EPOCHS is the first integer: 4th after the model with a project name, 3rd without one.
    if len(args) > 3 and _is_int(args[3]):
        return True
    if len(args) > 2 and _is_int(args[2]):
        return False
    if len(args) < 2 or not isinstance(args[1], str):
        return False
    from ..registries import LOSSES

    return not LOSSES.exists(args[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dataloader_arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[int, Any, bool]:
    """``(batch_size, collate_fn, train)`` from TrainLab's ``(batch_size, collate_fn=None, train=True)`` or the
    prototype's ``(rank, world_size, batch_size=8, collate_fn=None, shuffle=True)``; rank and world size are
    the process's own either way."""
    prototype = {"rank", "world_size", "shuffle"} & kwargs.keys() or (len(args) >= 2 and _is_int(args[1]))
    if prototype:
        named = dict(zip(("rank", "world_size", "batch_size", "collate_fn", "shuffle"), args)) | kwargs
        return named.get("batch_size", 8), named.get("collate_fn"), bool(named.get("shuffle", True))
    named = dict(zip(("batch_size", "collate_fn", "train"), args)) | kwargs
    return named["batch_size"], named.get("collate_fn"), bool(named.get("train", True))


def best_weights_file(run_dir: Path, output_filename: str, epoch: int) -> Path:
    """Where ``save_best_model`` keeps the best weights: ``RUN_DIR/{OUTPUT_FILENAME stem}_epoch_{N}.pt``."""
    stem = Path(output_filename).name.split(".")[0] or "weight"
    return run_dir / f"{stem}_epoch_{epoch}.pt"


def write_best_weights(path: Path, model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any] | None) -> None:
    """The prototype's file, ``{'model_state_dict', 'optimizer_state_dict'}``, written whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({"model_state_dict": model_state, "optimizer_state_dict": optimizer_state}, tmp)
    tmp.replace(path)


__all__ = ["best_weights_file", "dataloader_arguments", "positional_arguments", "write_best_weights"]


class EngineSteppedScheduler:
    """What a trainer sees as ``self.scheduler``: the real LR scheduler, except that ``step()`` does nothing.

    The engine steps the schedule itself after every optimizer step (or epoch), including the steps a
    prototype-style loop takes with ``self.optimizer.step()``; a loop that also called ``scheduler.step()``
    would advance it twice, and one that never calls it would train at the warm-up's first learning rate.
    """

    def __init__(self, scheduler: Any, on_ignored_step: Any) -> None:
        self.scheduler = scheduler
        self._on_ignored_step = on_ignored_step

    def step(self, *args: Any, **kwargs: Any) -> None:
        self._on_ignored_step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["scheduler"], name)
