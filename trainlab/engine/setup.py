"""Per-process set-up of a trainer: device, seeds, run directory, logger, model wrapping, optimizer, resume."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import Config
from ..registries import HOOKS
from . import distributed
from .checkpoint import Checkpointer, find_resume_checkpoint
from .hooks import sort_hooks
from .logging import MetricsWriter, setup_logger
from .strategies import build_strategy, resolve_device

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_run_dir(output_dir: str, project_name: str, run_dir: str) -> Path:
    """``RUN_DIR`` when set, else a new ``OUTPUT_DIR/PROJECT_NAME/<timestamp>`` (decided by rank 0, shared with all)."""
    path = Path(run_dir) if run_dir else None
    if path is None and distributed.is_main_process():
        base = Path(output_dir) / project_name
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = base / stamp
        suffix = 1
        while path.exists():
            path, suffix = base / f"{stamp}-{suffix}", suffix + 1
    path = Path(distributed.broadcast_object(str(path) if path else None))
    if distributed.is_main_process():
        path.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    return path


def setup_trainer(trainer: BaseTrainer, rank: int, world_size: int) -> None:
    """Everything a process needs before its first batch; the model is changed by ``custom_setup`` then wrapped."""
    settings = trainer.settings
    trainer.device = resolve_device(settings["device"])
    if world_size > 1 and not distributed.is_distributed():
        distributed.init_distributed(trainer.device.type)
    trainer.rank, trainer.world_size = rank, world_size
    if trainer.model is None:
        raise ValueError(f"{type(trainer).__name__} has no model: pass model= when constructing it")
    resume_from = find_resume_checkpoint(settings["resume"], settings["run_dir"], settings["output_dir"], settings["project_name"])
    run_dir = settings["run_dir"] or (str(resume_from.parent.parent) if resume_from is not None else "")
    trainer.run_dir = make_run_dir(settings["output_dir"], settings["project_name"], run_dir)
    trainer.logger = setup_logger(rank, trainer.run_dir / "train.log")
    trainer.resume_from = resume_from
    if rank == 0 and trainer.config is not None:
        Config(trainer.config).dump(trainer.run_dir / "config.yaml")
    seed_everything(settings["seed"])  # identical on every rank, so per-process changes start identical
    trainer.custom_setup(rank, world_size)
    trainer.strategy = build_strategy(trainer.device, settings["precision"], settings["find_unused_parameters"])
    trainer.model = trainer.strategy.wrap(trainer.model)
    seed_everything(settings["seed"] + rank)  # different dropout masks per rank, repeatable per run
    trainer.metrics_writer = MetricsWriter(trainer.run_dir) if rank == 0 else None
    trainer.checkpointer = Checkpointer(trainer)
    extra = [HOOKS.build(cfg) for cfg in settings["hooks"]]
    trainer.hooks = sort_hooks([*trainer.default_hooks(), *extra])
    install_interrupt_handlers(trainer)
    trainable = sum(p.numel() for p in trainer.unwrapped_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.unwrapped_model.parameters())
    trainer.logger.info(
        "run directory %s | %d process(es) on %s | %s | trainable parameters %s / %s (%.2f%%)",
        trainer.run_dir, world_size, trainer.device, settings["precision"], f"{trainable:,}", f"{total:,}",
        100.0 * trainable / max(total, 1),
    )


def setup_for_evaluation(trainer: BaseTrainer) -> None:
    """Device, ranks and precision for evaluating the model as it is; every rank keeps a replica (no DDP).

    Does nothing when the trainer is already set up (for training or evaluation).
    """
    if trainer.strategy is not None:
        return
    settings = trainer.settings
    trainer.device = resolve_device(settings["device"])
    trainer.rank, trainer.world_size = distributed.get_rank(), distributed.get_world_size()
    trainer.logger = setup_logger(trainer.rank)
    trainer.custom_setup(trainer.rank, trainer.world_size)
    trainer.strategy = build_strategy(trainer.device, settings["precision"], False)
    trainer.model = trainer.model.to(trainer.device)
    trainer.loss_fn = build_loss_on(trainer)


def build_loss_on(trainer: BaseTrainer) -> torch.nn.Module | None:
    from ..optim import build_loss

    loss_fn = build_loss(trainer.settings["loss_fn"] or None, dict(trainer.settings["loss_kwargs"]))
    return loss_fn.to(trainer.device) if loss_fn is not None else None


def install_interrupt_handlers(trainer: BaseTrainer) -> None:
    """SIGTERM (a scheduler's pre-emption) and the first Ctrl-C ask for a checkpoint at the next step boundary."""
    if threading.current_thread() is not threading.main_thread():
        return

    def request_stop(signum: int, frame: object) -> None:
        if trainer.interrupt_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        trainer.interrupt_signal = signum
        trainer.logger.warning("got %s: saving a checkpoint at the next step, then stopping", signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)


def build_optimization(trainer: BaseTrainer) -> None:
    """Optimizer (no weight decay on biases and norms), scheduler and loss from their registries by name."""
    from ..optim import build_optimizer, build_scheduler

    settings = trainer.settings
    trainer.optimizer = build_optimizer(trainer.unwrapped_model, settings["optimizer_class"], dict(settings["optimizer_kwargs"]))
    scheduled = build_scheduler(
        trainer.optimizer, settings["scheduler_class"] or None, dict(settings["scheduler_kwargs"]),
        steps_per_epoch=trainer.steps_per_epoch, epochs=settings["epochs"], max_steps=settings["max_steps"],
        warmup_steps=settings["warmup_steps"], warmup_ratio=settings["warmup_ratio"],
    )
    if scheduled is not None:
        trainer.scheduler = scheduled.scheduler
        trainer.scheduler_interval = "metric" if scheduled.monitor else scheduled.interval
    trainer.loss_fn = build_loss_on(trainer)


def restore_state(trainer: BaseTrainer) -> None:
    """Resume a run (RESUME) or only load model weights (LOAD_FROM)."""
    if trainer.resume_from is not None:
        trainer.checkpointer.resume(trainer.resume_from)
    elif trainer.settings["load_from"]:
        trainer.checkpointer.load_weights(trainer.settings["load_from"])


__all__ = ["build_optimization", "make_run_dir", "restore_state", "seed_everything", "setup_trainer"]
