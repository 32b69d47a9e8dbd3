"""BaseTrainer: what a task does with a batch, the prototype's extension points and helpers, and the entry
points (``fit``, ``train``). The set-up of one process is ``trainer_setup``, what goes into a checkpoint
``trainer_state``; the loop itself is ``trainlab.engine.loop``; distribution and state I/O are the strategy's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config.settings import TrainerSettings
from ..errors import ConfigError
from ..optim.schedulers import ScheduledLR
from ..registries import TRAINERS
from . import distributed, loop, prototype
from .checkpoint import Checkpointer
from .context import RunContext
from .data import EpochPosition
from .hooks import Hook
from .logging import get_logger
from .run_status import RunStatus
from .strategies import Strategy, resolve_device
from .summary import process_age_s, run_summary, summary_table
from .trackers import MetricsWriter
from .trainer_settings import settings_being_built, signature_with_settings
from .trainer_setup import TrainerSetup
from .trainer_state import TrainerState


@TRAINERS.register_module()
class BaseTrainer(prototype.PrototypeHelpers, TrainerSetup, TrainerState):
    """Trains ``model`` with the TRAINER settings (see ``trainlab.config.defaults``).

    Subclasses override what is theirs: ``train_step`` / ``eval_step`` (one batch), or the prototype's
    ``custom_setup(rank, world_size)`` and ``run_one_epoch(...)``. The prototype's positional constructor
    ``(model, log_queue, [project_name,] loss_fn, epochs, optimizer_class, ...)`` works too.
    """

    def __init__(self, model: nn.Module | None = None, *args: Any, config: Mapping[str, Any] | None = None,
                 settings: TrainerSettings | None = None, **options: Any) -> None:
        named = prototype.positional_arguments(args, type(self).__name__)
        self.log_queue = named.pop("log_queue", None)  # the prototype's logging queue; TrainLab logs per rank itself
        given = {key: value for key, value in {**named, **options}.items() if value is not None}
        base = settings or settings_being_built() or TrainerSettings()
        self.settings: TrainerSettings = base.replace(**given) if given else base
        self.config = config
        self._model = model
        self.context: RunContext | None = None
        self.strategy: Strategy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: ScheduledLR | None = None  # the LR schedule and when the engine steps it
        self.scheduler: Any = None  # its scheduler as the trainer's own code sees it (step() is the engine's job)
        self.loss_fn: nn.Module | None = None
        self.hooks: list[Hook] = []
        self.train_dataset: Dataset | None = None  # the datasets of the current train() call, for hooks
        self.val_dataset: Dataset | None = None
        self.checkpointer: Checkpointer | None = None
        self.metrics_writer: MetricsWriter | None = None
        self.resume_from: Path | None = None
        # Loop state: counters advanced by trainlab.engine.loop and by the optimizer's step hook.
        self.global_step = 0
        self.epoch = 0  # completed epochs
        self.batch_in_epoch = 0  # batches of this rank since the epoch (or its resumed part) started
        self.epoch_samples_before = 0  # samples all ranks consumed in this epoch before a resume on another world size
        self.resume_position: EpochPosition | None = None  # where a resumed epoch continues
        self.steps_per_epoch = 0
        self.should_stop = False
        self.interrupted = False  # set on every rank once any rank got SIGTERM/SIGINT
        self.interrupt_signal: int | None = None
        self.accumulated_loss: torch.Tensor | float = 0.0
        self.last_metrics: dict[str, float] = {}
        self.validated_step = -1  # the global step of the last validation
        self.evaluating_test = False  # save_best_model keeps nothing while the test split is evaluated
        self.last_eval_state: dict[str, torch.Tensor] = {}  # the last evaluation's gathered metric state
        self.timings: dict[str, float] = {}  # seconds per phase of this process (train, evaluate, ...)
        self.samples_trained = 0  # samples all ranks trained on in this process's lifetime
        self.phase_started: dict[str, float] = {}  # phases running now (perf_counter at their start)
        self.first_step = 0  # global_step when this process started training (resumed runs start later)
        self.run_status: RunStatus | None = None
        self._started = time.perf_counter()
        # The prototype's save_best_model bookkeeping.
        self.file_path: str | None = None
        self.epoch_best_model: int | None = None
        self.eval_loss = float("inf")
        self.reported_val_loss: float | None = None
        self._told_scheduler = False

    def __getattr__(self, name: str) -> Any:
        # The prototype's attributes (self.epochs, self.save, self.output_dir, ...) read the settings.
        settings = self.__dict__.get("settings")
        if settings is not None and name in settings.__dataclass_fields__:
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__} has no attribute '{name}'")

    # ---------------------------------------------------------------- the process this trainer runs in
    @property
    def rank(self) -> int:
        return self.context.rank if self.context else distributed.get_rank()

    @property
    def world_size(self) -> int:
        return self.context.world_size if self.context else distributed.get_world_size()

    @property
    def device(self) -> torch.device:
        return self.context.device if self.context else resolve_device(self.settings.device)

    @property
    def total_steps(self) -> int:
        """Optimizer steps the whole run takes (EPOCHS × steps per epoch, or MAX_STEPS when smaller)."""
        total = self.steps_per_epoch * self.settings.epochs
        return min(total, self.settings.max_steps) if self.settings.max_steps > 0 else total

    @property
    def run_dir(self) -> Path | None:
        return self.context.run_dir if self.context else None

    @property
    def logger(self) -> Any:
        return self.context.logger if self.context else get_logger()

    @property
    def model(self) -> nn.Module:
        """The model as the loop calls it: wrapped by the strategy once set up (e.g. in DDP)."""
        if self.strategy is not None and self.strategy.model is not None:
            return self.strategy.model
        return self._model

    @model.setter
    def model(self, model: nn.Module) -> None:
        if self.strategy is not None and self.strategy.model is not None:
            raise ConfigError("the model is already placed and wrapped; change it in custom_setup (before wrapping)")
        self._model = model

    @property
    def unwrapped_model(self) -> nn.Module:
        """The user's model inside any wrapper (its weights, adapters and policies)."""
        return self.strategy.module if self.strategy is not None and self.strategy.model is not None else self._model

    # ---------------------------------------------------------------- extension points
    def custom_setup(self, rank: int, world_size: int) -> None:
        """Per-process model changes (e.g. adding LoRA layers), before the model is placed and wrapped."""

    def default_hooks(self) -> list[Hook]:
        """Hooks every run gets (built after ``custom_setup``); extend the list to add your own (or name them
        in TRAINER.HOOKS). A model with LoRA / PEFT adapters also gets them exported to RUN_DIR/adapter."""
        from .adapter_hook import ExportAdapterHook, has_adapter
        from .builtin_hooks import CheckpointHook, EarlyStoppingHook

        hooks: list[Hook] = [CheckpointHook(), EarlyStoppingHook()]
        return [*hooks, ExportAdapterHook()] if has_adapter(self.unwrapped_model) else hooks

    def build_metrics(self) -> Any:
        """A fresh metric for one evaluation, or None: ``update(**eval_step outputs but the loss)``,
        ``state()`` (tensors gathered across ranks) and ``compute(state)``; see ``trainlab.metrics``."""
        return None

    def train_step(self, batch: Any) -> torch.Tensor:
        """The loss of one training batch: the model's own ``loss``, or ``loss_fn(logits, labels)``."""
        outputs = self.forward(batch)
        return self.compute_loss(outputs, batch)

    def eval_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """The batch's ``loss`` plus the keyword arguments of the metric's ``update`` (here logits and labels).

        Runs under ``torch.no_grad``.
        """
        outputs = self.forward(batch)
        result = {"loss": self.compute_loss(outputs, batch)}
        logits = getattr(outputs, "logits", outputs if isinstance(outputs, torch.Tensor) else None)
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if logits is not None and labels is not None:
            result.update(logits=logits, labels=labels)
        return result

    def forward(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):
            return self.model(**batch)
        return self.model(*batch) if isinstance(batch, (list, tuple)) else self.model(batch)

    def compute_loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        loss = getattr(outputs, "loss", None)
        if loss is None and isinstance(outputs, Mapping):
            loss = outputs.get("loss")
        if loss is not None:
            return loss
        logits = getattr(outputs, "logits", outputs)
        labels = batch.get("labels", batch.get("label")) if isinstance(batch, Mapping) else batch[-1]
        if self.loss_fn is None or labels is None:
            raise ConfigError("the model returned no loss and there is no TRAINER.LOSS_FN / labels to compute one")
        return self.loss_fn(logits, labels)

    def run_one_epoch(self, epoch: int, total_epoch: int, data_loader: DataLoader, rank: int, device: torch.device,
                      train: bool = True) -> Any:
        """One pass over ``data_loader`` (``epoch`` runs 1..EPOCHS): training steps (returns the mean loss) or an
        evaluation (returns metrics). Overrides may return None, a number (the loss) or a mapping of metrics."""
        if not train:
            return loop.evaluate(self, data_loader, prefix="val")
        return loop.train_batches(self, data_loader, epoch)

    def evaluates_in_own_loop(self) -> bool:
        """Whether this trainer evaluates only in its own ``run_one_epoch`` (a prototype-style trainer without an
        ``eval_step``): the test split then goes through that loop too."""
        return self.uses_own_epoch_loop() and type(self).eval_step is BaseTrainer.eval_step

    def uses_own_epoch_loop(self) -> bool:
        """Whether this trainer overrides ``run_one_epoch`` (its loop then calls collectives every batch)."""
        return type(self).run_one_epoch is not BaseTrainer.run_one_epoch

    # ---------------------------------------------------------------- entry points
    def fit(self, train_dataset: Dataset, val_dataset: Dataset | None = None, test_dataset: Dataset | None = None) -> dict[str, float]:
        """Train (and evaluate) in the current process group; returns the last metrics."""
        return self.train(distributed.get_rank(), distributed.get_world_size(), train_dataset, self.settings.batch_size_train,
                          self.settings.batch_size_eval, val_dataset=val_dataset, evaluate=val_dataset is not None,
                          test_dataset=test_dataset)

    def train(self, rank: int, world_size: int, train_dataset: Dataset, batch_size_train: int, batch_size_eval: int,
              val_dataset: Dataset | None = None, collate_fn: Callable | None = None, evaluate: bool = False,
              test_dataset: Dataset | None = None) -> dict[str, float]:
        """The prototype's entry point: set up this process, then train for EPOCHS."""
        if (batch_size_train, batch_size_eval) != (self.settings.batch_size_train, self.settings.batch_size_eval):
            self.settings = self.settings.replace(batch_size_train=batch_size_train, batch_size_eval=batch_size_eval)
        self.train_dataset, self.val_dataset = train_dataset, val_dataset if evaluate else None
        self.setup(rank, world_size)
        status, error = "failed", None
        try:
            train_loader = self.prepare_dataloader(train_dataset, batch_size_train, collate_fn, train=True)
            val_loader = self.prepare_dataloader(val_dataset, batch_size_eval, collate_fn, False) if val_dataset is not None and evaluate else None
            test_loader = self.prepare_dataloader(test_dataset, batch_size_eval, collate_fn, False) if test_dataset is not None else None
            self.setup_optimization(math.ceil(len(train_loader) / self.settings.grad_accum_steps))
            self.restore()
            if self.rank == 0:  # after a resume succeeded: a failed one leaves the run's files as they were
                self.run_status = RunStatus(self.run_dir, world_size)
            result = loop.fit(self, train_loader, val_loader, test_loader)
            status = "finished"
            return result
        except KeyboardInterrupt as exc:  # SIGTERM / Ctrl-C (TrainingInterrupted), after a checkpoint
            status, error = "interrupted", exc
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.close(status, error)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        if self.rank != 0 or not metrics:
            return
        if self.metrics_writer is not None:
            self.metrics_writer.write(metrics, step=self.global_step, epoch=self.epoch)
        if not any(k.startswith("train/") for k in metrics):
            text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            self.logger.info("step %d: %s", self.global_step, text)

    def evaluate(self, data_loader: DataLoader, prefix: str = "val") -> dict[str, float]:
        """Loss and metrics over the whole set: every sample counted exactly once across ranks."""
        return loop.evaluate(self, data_loader, prefix)

    def evaluate_dataset(self, dataset: Dataset, prefix: str = "test") -> dict[str, float]:
        """Evaluate the model as it is on ``dataset`` (an evaluation-only set-up: no run directory)."""
        if self.strategy is None:
            self.setup(distributed.get_rank(), distributed.get_world_size(), for_training=False)
        return self.evaluate(self.prepare_dataloader(dataset, self.settings.batch_size_eval, train=False), prefix=prefix)

    def close(self, status: str = "finished", error: BaseException | None = None) -> None:
        """End the run's logging and status file; ``status``: finished, failed or interrupted."""
        if self.run_status is not None:
            summary = run_summary(self.run_dir, self.settings, self.last_metrics, self.timings, self.samples_trained,
                                  self.global_step, self.epoch)
            self.run_status.finish(status, summary, error=None if error is None else f"{type(error).__name__}: {error}")
            self.run_status = None
            from ..plots import plot_run

            plot_run(self.run_dir)  # RUN_DIR/plots/metrics.png; never raises
            if status == "finished":
                wall = process_age_s() or time.perf_counter() - self._started
                self.logger.info("run finished\n%s", summary_table(summary, wall))
        if self.metrics_writer is not None:
            self.metrics_writer.close(status)
            self.metrics_writer = None


BaseTrainer.__init__.__signature__ = signature_with_settings(BaseTrainer.__init__)  # type: ignore[attr-defined]
