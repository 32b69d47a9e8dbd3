"""BaseTrainer: set-up, the shared training loop, and the prototype's extension points and helpers."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from ..registries import TRAINERS
from . import distributed, loops
from .data import build_loader
from .hooks import Hook, call_hooks
from .logging import ProgressBar, get_logger
from .settings import resolve_settings, settings_signature
from .setup import build_optimization, restore_state, setup_for_evaluation, setup_trainer


@TRAINERS.register_module()
class BaseTrainer:
    """Trains ``model`` with the TRAINER settings (see ``trainlab.config.defaults``).

    Subclasses override what is theirs: ``train_step`` / ``eval_step`` (one batch), or the prototype's
    ``custom_setup(rank, world_size)`` and ``run_one_epoch(...)``. Distribution, precision, logging and
    checkpoints are the engine's business.
    """

    def __init__(self, model: nn.Module | None = None, *, config: Mapping[str, Any] | None = None, **options: Any) -> None:
        self.model = model
        self.config = config
        self.settings = resolve_settings(options, type(self).__name__)
        for key, value in self.settings.items():  # the prototype's attributes: self.epochs, self.save, ...
            setattr(self, key, value)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.scheduler_interval = "step"
        self.strategy: Any = None  # set up per process: how the model is placed, wrapped and stepped
        self.loss_fn: nn.Module | None = None
        self.logger = get_logger()
        self.hooks: list[Hook] = []
        self.run_dir: Path | None = None
        self.metrics_writer: Any = None
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.should_stop = False
        self.interrupted = False  # set on every rank once any rank got SIGTERM/SIGINT
        self.interrupt_signal: int | None = None
        self.last_metrics: dict[str, float] = {}
        self._accumulated: torch.Tensor | float = 0.0

    # ---------------------------------------------------------------- extension points
    def custom_setup(self, rank: int, world_size: int) -> None:
        """Per-process model changes (e.g. adding LoRA layers), before the model is moved and wrapped for DDP."""

    def default_hooks(self) -> list[Hook]:
        """Hooks every run gets; extend the list to add your own (or name them in TRAINER.HOOKS)."""
        from .builtin_hooks import CheckpointHook, EarlyStoppingHook

        return [CheckpointHook(), EarlyStoppingHook()]

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

    # ---------------------------------------------------------------- entry points
    def fit(self, train_dataset: Dataset, val_dataset: Dataset | None = None, test_dataset: Dataset | None = None) -> dict[str, float]:
        """Train (and evaluate) in the current process group; returns the last metrics."""
        return self.train(
            distributed.get_rank(),
            distributed.get_world_size(),
            train_dataset,
            self.batch_size_train,
            self.batch_size_eval,
            val_dataset=val_dataset,
            evaluate=val_dataset is not None,
            test_dataset=test_dataset,
        )

    def train(
        self,
        rank: int,
        world_size: int,
        train_dataset: Dataset,
        batch_size_train: int,
        batch_size_eval: int,
        val_dataset: Dataset | None = None,
        collate_fn: Callable | None = None,
        evaluate: bool = False,
        test_dataset: Dataset | None = None,
    ) -> dict[str, float]:
        """The prototype's entry point: set up this process, then train for ``epochs``."""
        self.batch_size_train, self.batch_size_eval = batch_size_train, batch_size_eval
        setup_trainer(self, rank, world_size)
        train_loader = self.prepare_dataloader(train_dataset, batch_size_train, collate_fn, train=True)
        val_loader = self.prepare_dataloader(val_dataset, batch_size_eval, collate_fn, False) if val_dataset is not None and evaluate else None
        self.steps_per_epoch = math.ceil(len(train_loader) / self.grad_accum_steps)
        build_optimization(self)
        restore_state(self)
        try:
            call_hooks(self.hooks, "before_train", self)
            while self.epoch < self.epochs and not self.should_stop:
                self.train_epoch(train_loader, val_loader)
            call_hooks(self.hooks, "after_train", self)
            if test_dataset is not None:
                test_loader = self.prepare_dataloader(test_dataset, batch_size_eval, collate_fn, train=False)
                self.last_metrics.update(self.test(test_loader))
        except BaseException as exc:
            call_hooks(self.hooks, "on_exception", self, exc)
            raise
        finally:
            self.close()
        return self.last_metrics

    def train_epoch(self, train_loader: DataLoader, val_loader: DataLoader | None) -> None:
        epoch = self.epoch
        batch_sampler = train_loader.batch_sampler
        if hasattr(batch_sampler, "set_epoch"):
            batch_sampler.set_epoch(epoch)
        if hasattr(batch_sampler, "skip"):  # resuming mid-epoch: continue after the batches already trained
            batch_sampler.skip = self.batch_in_epoch
        call_hooks(self.hooks, "before_epoch", self, epoch)
        result = self.run_one_epoch(epoch, self.epochs, train_loader, self.rank, self.device, train=True)
        metrics = {"train/epoch_loss": float(result)} if isinstance(result, (int, float)) else {}
        last_epoch = self.should_stop or epoch + 1 == self.epochs  # MAX_STEPS may end the run mid-epoch
        if val_loader is not None and self.eval_every_epochs and ((epoch + 1) % self.eval_every_epochs == 0 or last_epoch):
            metrics.update(self.validate(val_loader, epoch))
        self.batch_in_epoch = 0
        self.epoch = epoch + 1
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            self.scheduler.step()
        elif self.scheduler is not None and self.scheduler_interval == "metric" and self.monitor in metrics:
            self.scheduler.step(metrics[self.monitor])
        call_hooks(self.hooks, "after_epoch", self, epoch, metrics)

    def validate(self, val_loader: DataLoader, epoch: int) -> dict[str, float]:
        result = self.run_one_epoch(epoch, self.epochs, val_loader, self.rank, self.device, train=False)
        metrics = dict(result) if isinstance(result, Mapping) else {"val/loss": float(result)}
        self.last_metrics.update(metrics)
        self.log_metrics(metrics)
        call_hooks(self.hooks, "after_evaluate", self, metrics)
        return metrics

    def test(self, test_loader: DataLoader) -> dict[str, float]:
        metrics = self.evaluate(test_loader, prefix="test")
        self.log_metrics(metrics)
        return metrics

    # ---------------------------------------------------------------- the loop
    def run_one_epoch(self, epoch: int, total_epoch: int, data_loader: DataLoader, rank: int, device: torch.device, train: bool = True) -> Any:
        """One pass over ``data_loader``: training steps (returns the mean loss) or an evaluation (returns metrics)."""
        if not train:
            return self.evaluate(data_loader, prefix="val")
        return loops.train_epoch(self, data_loader, epoch)

    def accumulate(self, batch: Any, sync: bool) -> torch.Tensor | None:
        """Forward and backward one micro-batch; on ``sync``, step the optimizer. Returns the step's loss then."""
        strategy = self.strategy
        with strategy.no_sync(self.model, enabled=not sync), strategy.autocast():
            loss = self.train_step(batch)
            if isinstance(loss, Mapping):
                loss = loss["loss"]
        if not self.loss_is_finite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        strategy.backward(loss / self.grad_accum_steps)
        self._accumulated = self._accumulated + loss.detach().float() / self.grad_accum_steps
        if not sync:
            return None
        strategy.optimizer_step(self.optimizer, self.model, self.max_grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        self.global_step += 1
        step_loss, self._accumulated = self._accumulated, 0.0
        return step_loss

    def loss_is_finite(self, loss: torch.Tensor) -> bool:
        """Agree across ranks whether ``loss`` is finite (and whether a rank was interrupted), in one collective.

        A non-finite loss stops the run or skips the step (TRAINER.NONFINITE_LOSS).
        """
        flags = torch.stack([torch.isfinite(loss.detach()).all().float().cpu(), torch.tensor(float(self.interrupt_signal is None))])
        finite, not_interrupted = distributed.all_reduce_min(flags.to(self.device)).tolist()
        self.interrupted = not_interrupted == 0.0
        if finite == 1.0:
            return True
        where = f"epoch {self.epoch + 1}, batch {self.batch_in_epoch}, after optimizer step {self.global_step}"
        if self.nonfinite_loss == "skip":
            self.logger.warning("non-finite loss at %s: step skipped", where)
            return False
        raise FloatingPointError(
            f"non-finite loss at {where}; the last checkpoint is intact. "
            f"Lower the learning rate, check the data, or set TRAINER.NONFINITE_LOSS skip"
        )

    def evaluate(self, data_loader: DataLoader, prefix: str = "val") -> dict[str, float]:
        """Loss and metrics over the whole set: every sample counted exactly once across ranks."""
        return loops.evaluate(self, data_loader, prefix)

    # ---------------------------------------------------------------- prototype helpers
    def reduce_value(self, value: torch.Tensor, average: bool = True) -> torch.Tensor:
        """Sum or average ``value`` over all processes."""
        return distributed.reduce_value(value, average)

    def prepare_dataloader(self, dataset: Dataset, batch_size: int, collate_fn: Callable | None = None, train: bool = True) -> DataLoader:
        """A loader sharded over ranks: resumable shuffled order for training, each sample once for evaluation."""
        return build_loader(
            dataset, batch_size, train=train, rank=self.rank, world_size=self.world_size, seed=self.seed,
            collate_fn=collate_fn, num_workers=self.num_workers, group_by_length=self.group_by_length,
            pin_memory=self.device.type == "cuda",
        )

    def wrap_dataloader_with_tqdm(self, rank: int, data_loader: DataLoader, epoch: int, train_model: bool = True) -> ProgressBar:
        """A progress bar over ``data_loader`` on rank 0 (periodic log lines when not on a terminal)."""
        desc = f"epoch {epoch + 1}/{self.epochs} {'train' if train_model else 'eval'}"
        return ProgressBar(data_loader, len(data_loader), desc, rank, self.log_every_steps if train_model else 10**9)

    def save_best_model(self, epoch: int, avg_loss_epoch: float, train: bool = False) -> bool:
        """Prototype helper: record a validation loss; saves the model when it is the best so far."""
        return self.checkpointer.save_if_best({"val/loss": float(avg_loss_epoch)}, monitor="val/loss", mode="min")

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        if self.rank != 0 or not metrics:
            return
        if self.metrics_writer is not None:
            self.metrics_writer.write(metrics, step=self.global_step, epoch=self.epoch)
        if not any(k.startswith("train/") for k in metrics):
            text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            self.logger.info("step %d: %s", self.global_step, text)

    def evaluate_dataset(self, dataset: Dataset, prefix: str = "test") -> dict[str, float]:
        """Evaluate the model as it is on ``dataset`` (no training set-up, no run directory)."""
        setup_for_evaluation(self)
        return self.evaluate(self.prepare_dataloader(dataset, self.batch_size_eval, train=False), prefix=prefix)

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.strategy.unwrap(self.model)

    def close(self) -> None:
        if getattr(self, "metrics_writer", None) is not None:
            self.metrics_writer.close()


BaseTrainer.__init__.__signature__ = settings_signature(BaseTrainer.__init__)  # type: ignore[attr-defined]
