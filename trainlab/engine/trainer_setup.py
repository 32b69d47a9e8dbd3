"""The set-up of one training process: context, run directory, strategy, hooks and the first log line
(``setup``), then optimizer, scheduler and loss (``setup_optimization``), and the hooks the engine hangs on the
optimizer and the signals. ``BaseTrainer`` inherits it; the state it creates stays the trainer's own.
"""

from __future__ import annotations

import signal
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import distributed, prototype
from .checkpoint import Checkpointer
from .checkpoint_files import find_resume_checkpoint
from .context import RunContext
from .logging import setup_logger
from .setup import build_hooks, install_interrupt_handlers, make_run_dir, save_run_config, seed_everything
from .strategies import build_strategy, resolve_device
from .trackers import MetricsWriter, flat_params


class TrainerSetup:
    """Setting up one process for training or evaluation; mixed into ``BaseTrainer``, whose attributes it sets."""

    def setup(self, rank: int, world_size: int, *, for_training: bool = True) -> None:
        """Everything this process needs before its first batch: context, run directory, strategy, hooks.

        ``custom_setup`` changes the model before the strategy places and wraps it. An evaluation-only set-up
        (``for_training=False``) keeps a plain replica per rank and creates no run directory.
        """
        settings = self.settings
        device = resolve_device(settings.device)
        if world_size > 1 and not distributed.is_distributed():
            distributed.init_distributed(device.type, timeout_s=settings.timeout_s)
        if self._model is None:
            raise ConfigError(f"{type(self).__name__} has no model: pass model= when constructing it")
        run_dir = None
        if for_training:
            self.resume_from = find_resume_checkpoint(settings.resume, settings.run_dir, settings.output_dir, settings.project_name)
            chosen = settings.run_dir or (str(self.resume_from.parent.parent) if self.resume_from is not None else "")
            run_dir = make_run_dir(settings.output_dir, settings.project_name, chosen, fresh=self.resume_from is None)
        logger = setup_logger(rank, run_dir / "train.log" if run_dir else None)
        self.context = RunContext(rank, world_size, device, run_dir, logger)
        if run_dir is not None and rank == 0 and self.config is not None and self.resume_from is None:
            save_run_config(run_dir, self.config)  # a resume writes it once restore() succeeded
        seed_everything(settings.seed)  # identical on every rank, so per-process changes start identical
        self.custom_setup(rank, world_size)
        self.strategy = build_strategy(settings, device, name=None if for_training else "single")
        self.strategy.setup(self._model)
        seed_everything(settings.seed + rank)  # different dropout masks per rank, repeatable per run
        if not for_training:
            self.loss_fn = self.build_loss()
            return
        if rank == 0:
            params = flat_params(self.config) if self.config is not None else {}
            self.metrics_writer = MetricsWriter(run_dir, settings.loggers, settings.project_name, params)
        self.checkpointer = Checkpointer(self.strategy, run_dir / "checkpoints", settings.keep_last)
        self.hooks = build_hooks(self.default_hooks(), settings.hooks)
        install_interrupt_handlers(self.request_stop)
        trainable = sum(p.numel() for p in self.unwrapped_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.unwrapped_model.parameters())
        kernel, kernel_reason = self.strategy.dropout_kernel
        logger.info("run directory %s | %d process(es) on %s | %s | %s | dropout %s | trainable parameters %s / %s (%.2f%%)",
                    run_dir, world_size, device, type(self.strategy).__name__,
                    f"{self.strategy.precision} ({self.strategy.precision_reason})", f"{kernel} ({kernel_reason})", f"{trainable:,}",
                    f"{total:,}", 100.0 * trainable / max(total, 1))

    def setup_optimization(self, steps_per_epoch: int) -> None:
        """Optimizer (through the strategy), scheduler and loss; the engine counts and schedules every optimizer
        step, including those a prototype-style ``run_one_epoch`` takes itself."""
        from ..optim import build_scheduler

        settings = self.settings
        self.steps_per_epoch = steps_per_epoch
        self.optimizer = self.strategy.build_optimizer(settings.optimizer_class, settings.optimizer_kwargs)
        scheduled = build_scheduler(
            self.optimizer, settings.scheduler_class or None, settings.scheduler_kwargs,
            steps_per_epoch=steps_per_epoch, epochs=settings.epochs, max_steps=settings.max_steps,
            warmup_steps=settings.warmup_steps, warmup_ratio=settings.warmup_ratio,
        )
        if scheduled is not None:
            self.schedule = scheduled
            self.scheduler = prototype.EngineSteppedScheduler(scheduled.scheduler, self._ignored_scheduler_step)
        self.optimizer.register_step_post_hook(self._after_optimizer_step)
        self.loss_fn = self.build_loss()

    def build_loss(self) -> nn.Module | None:
        from ..optim import build_loss

        loss_fn = build_loss(self.settings.loss_fn or None, self.settings.loss_kwargs)
        return loss_fn.to(self.device) if loss_fn is not None else None

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.global_step += 1
        if self.schedule is not None:
            self.schedule.advance("step", {}, self.settings.monitor)

    def _ignored_scheduler_step(self) -> None:
        if not self._told_scheduler:
            self._told_scheduler = True
            self.logger.info("TrainLab steps the scheduler itself (every optimizer step or epoch, as configured); "
                             "the trainer's own scheduler.step() calls are ignored")

    def request_stop(self, signum: int) -> bool:
        """SIGTERM / first Ctrl-C: checkpoint at the next step boundary, then stop; a second Ctrl-C stops at once."""
        if self.interrupt_signal is not None and signum == signal.SIGINT:
            return False
        self.interrupt_signal = signum
        self.logger.warning("got %s: saving a checkpoint at the next step, then stopping", signal.Signals(signum).name)
        return True


__all__ = ["TrainerSetup"]
