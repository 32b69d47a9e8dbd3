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
from torch.utils.data import DataLoader, Dataset

from . import distributed
from .data import build_loader
from .logging import ProgressBar

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


class PrototypeHelpers:
    """The helpers prototype trainers call from their own ``run_one_epoch`` (mixed into BaseTrainer).

    None of them contains a collective that only some ranks reach.
    """

    def reduce_value(self, value: torch.Tensor, average: bool = True) -> torch.Tensor:
        """Sum or average ``value`` over all processes."""
        return distributed.reduce_value(value, average)

    def prepare_dataloader(self, dataset: Dataset, *args: Any, **kwargs: Any) -> DataLoader:
        """A loader sharded over ranks: ``(dataset, batch_size, collate_fn=None, train=True)`` or the prototype's
        ``(dataset, rank, world_size, batch_size=8, collate_fn=None, shuffle=True)``.

        Training order is shuffled and resumable. Evaluation counts each sample once — except for a trainer
        that overrides ``run_one_epoch``: its loop calls collectives every batch, so every rank gets the same
        number of batches (padded as the prototype's DistributedSampler did).
        """
        batch_size, collate_fn, train = dataloader_arguments(args, kwargs)
        own_loop = self.uses_own_epoch_loop()
        return build_loader(
            dataset, batch_size, train=train, rank=self.rank, world_size=self.world_size, seed=self.settings.seed,
            collate_fn=collate_fn, num_workers=self.settings.num_workers, group_by_length=self.settings.group_by_length,
            pin_memory=self.device.type == "cuda", equal_batches=own_loop,
        )

    def wrap_dataloader_with_tqdm(self, rank: int, data_loader: DataLoader, epoch: int, train_model: bool = True) -> ProgressBar:
        """A progress bar over ``data_loader`` on rank 0 (periodic log lines when not on a terminal)."""
        desc = f"epoch {epoch}/{self.settings.epochs} {'train' if train_model else 'eval'}"
        return ProgressBar(data_loader, len(data_loader), desc, rank, self.settings.log_every_steps if train_model else 10**9)

    def save_best_model(self, epoch: int, avg_loss_epoch: float, train: bool = False) -> bool:
        """The prototype's helper: keep the weights when ``avg_loss_epoch`` is the lowest validation loss so far.

        Does nothing while training. Safe on any subset of ranks (rank 0 alone included): no collective. Rank 0 writes
        ``RUN_DIR/{OUTPUT_FILENAME}_epoch_{N}.pt`` (``model_state_dict``, ``optimizer_state_dict``), replacing the
        previous best, and keeps ``file_path``, ``epoch_best_model`` and ``eval_loss``; the engine then marks the
        step's checkpoint best by this loss (MONITOR val/loss).
        """
        if train:
            return False
        loss = float(avg_loss_epoch)
        self.reported_val_loss = loss
        if not self.settings.save or self.evaluating_test:
            return False
        if not loss < self.eval_loss:
            return False
        path = best_weights_file(self.run_dir, self.settings.output_filename, epoch)
        state = self.strategy.local_model_state_dict() if self.rank == 0 else None  # one writer, whoever calls
        if state is not None:
            optimizer_state = self.optimizer.state_dict() if self.optimizer is not None else None
            write_best_weights(path, state, optimizer_state)
            if self.file_path is not None and Path(self.file_path) != path:
                Path(self.file_path).unlink(missing_ok=True)
        self.file_path = str(path)
        self.eval_loss, self.epoch_best_model = loss, epoch
        return True


__all__ = ["EngineSteppedScheduler", "PrototypeHelpers", "best_weights_file", "dataloader_arguments", "positional_arguments",
           "write_best_weights"]
