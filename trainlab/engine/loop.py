"""The training loop every trainer shares, top to bottom: fit → epoch → batch → step, and evaluation.

``fit`` runs epochs; each epoch calls the trainer's ``run_one_epoch`` (the prototype's extension point), whose
default is ``train_batches`` for training and ``evaluate`` for evaluation. ``train_on_batch`` is one
micro-batch: forward (the trainer's ``train_step``), backward and, at an accumulation boundary, the
optimizer step — all through the strategy, so the loop never branches on the backend. Logging, evaluation
bookkeeping, checkpoints and early stopping are hooks. This module advances the epoch and batch counters; the
optimizer's step hook (BaseTrainer) counts optimizer steps, including those a prototype-style loop takes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from ..utils.durations import format_duration
from . import distributed
from .data import batch_size_of, move_to_device
from .hooks import call_hooks

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer


def fit(trainer: BaseTrainer, train_loader: DataLoader, val_loader: DataLoader | None,
        test_loader: DataLoader | None = None) -> dict[str, float]:
    """Train for the remaining epochs, then evaluate on ``test_loader``; returns the last metrics."""
    try:
        call_hooks(trainer.hooks, "before_train", trainer)
        trainer.first_step = trainer.global_step  # where this process started: the base of its ETA
        fresh_start = trainer.epoch == 0 and trainer.global_step == 0 and trainer.batch_in_epoch == 0
        if trainer.settings.eval_before_train and val_loader is not None and fresh_start:
            validate(trainer, val_loader, 0)  # step 0: the starting point of every curve
        while trainer.epoch < trainer.settings.epochs and not trainer.should_stop:
            run_epoch(trainer, train_loader, val_loader)
        call_hooks(trainer.hooks, "after_train", trainer)
        if test_loader is not None:
            with timed(trainer, "evaluate"):
                metrics = test(trainer, test_loader)
            from ..reports import write_test_report

            write_test_report(trainer)  # classification: RUN_DIR/report (confusion matrix, curves, per class)
            trainer.last_metrics.update(metrics)
            trainer.log_metrics(metrics)
    except BaseException as exc:
        call_hooks(trainer.hooks, "on_exception", trainer, exc)
        raise
    return trainer.last_metrics


def run_epoch(trainer: BaseTrainer, train_loader: DataLoader, val_loader: DataLoader | None) -> None:
    """One epoch: the training pass, the evaluation when due, then the epoch's scheduler step and hooks."""
    settings = trainer.settings
    epoch = trainer.epoch + 1  # the prototype's numbering: run_one_epoch sees 1..EPOCHS
    batch_sampler = train_loader.batch_sampler
    if hasattr(batch_sampler, "set_epoch"):
        batch_sampler.set_epoch(trainer.epoch)
    position, trainer.resume_position = trainer.resume_position, None
    if position is not None and hasattr(batch_sampler, "resume"):  # resuming mid-epoch, on any world size
        trainer.batch_in_epoch = batch_sampler.resume(position)
        trainer.epoch_samples_before = position.samples - trainer.batch_in_epoch * settings.batch_size_train * trainer.world_size
    call_hooks(trainer.hooks, "before_epoch", trainer, trainer.epoch)
    samples_before = trainer.samples_trained
    with timed(trainer, "train"), trainer.strategy.training_kernels():
        result = trainer.run_one_epoch(epoch, settings.epochs, train_loader, trainer.rank, trainer.device, train=True)
    if trainer.samples_trained == samples_before:  # a prototype-style loop took the batches itself: all of them
        trainer.samples_trained += epoch_samples(train_loader) * trainer.world_size
    metrics = epoch_metrics(result, "train")
    last_epoch = trainer.should_stop or epoch == settings.epochs  # MAX_STEPS may end the run mid-epoch
    every = settings.eval_every_epochs
    if val_loader is not None and every and (epoch % every == 0 or last_epoch):
        if trainer.validated_step == trainer.global_step:  # resumed from the checkpoint this validation wrote
            metrics.update({k: v for k, v in trainer.last_metrics.items() if k.startswith("val/")})
        else:
            metrics.update(validate(trainer, val_loader, epoch))
    trainer.batch_in_epoch = trainer.epoch_samples_before = 0
    trainer.epoch = epoch
    if trainer.schedule is not None:
        trainer.schedule.advance("epoch", metrics, settings.monitor)
    call_hooks(trainer.hooks, "after_epoch", trainer, epoch - 1, metrics)


def epoch_samples(loader: DataLoader) -> int:
    """Samples one rank takes in a whole pass over ``loader``."""
    sampler = getattr(loader.batch_sampler, "sampler", None)
    try:
        return len(sampler)  # type: ignore[arg-type]
    except TypeError:
        return len(loader) * (loader.batch_size or 1)


def validate(trainer: BaseTrainer, val_loader: DataLoader, epoch: int) -> dict[str, float]:
    """Run the evaluation epoch and hand complete metrics (the same on every rank) to the hooks."""
    with timed(trainer, "evaluate"):
        metrics = evaluation_epoch(trainer, val_loader, epoch, "val")
    trainer.last_metrics.update(metrics)
    trainer.validated_step = trainer.global_step
    trainer.log_metrics(metrics)
    call_hooks(trainer.hooks, "after_evaluate", trainer, metrics)
    return metrics


def evaluation_epoch(trainer: BaseTrainer, loader: DataLoader, epoch: int, split: str) -> dict[str, float]:
    """``run_one_epoch(train=False)`` as ``split`` metrics; a loss a prototype-style epoch reported only through
    save_best_model (maybe on rank 0 alone) is shared with every rank as ``<split>/loss``."""
    result = trainer.run_one_epoch(epoch, trainer.settings.epochs, loader, trainer.rank, trainer.device, train=False)
    metrics = epoch_metrics(result, split)
    reported = distributed.broadcast_object(trainer.reported_val_loss)
    trainer.reported_val_loss = None
    if reported is not None:
        metrics.setdefault(f"{split}/loss", float(reported))
    return metrics


@contextlib.contextmanager
def timed(trainer: BaseTrainer, phase: str) -> Iterator[None]:
    """Add the block's wall time to ``trainer.timings[phase]`` (the end-of-run timing line)."""
    timings, running = getattr(trainer, "timings", None), getattr(trainer, "phase_started", None)
    if timings is None or running is None:  # not a BaseTrainer (a hook called on its own)
        yield
        return
    start = running[phase] = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start
        running.pop(phase, None)


def eta_seconds(trainer: BaseTrainer) -> float | None:
    """Seconds of training left at this process's pace so far (evaluations not included); None before a step."""
    done = trainer.global_step - trainer.first_step
    if done <= 0 or not trainer.total_steps:
        return None
    spent = trainer.timings.get("train", 0.0) + time.perf_counter() - trainer.phase_started.get("train", time.perf_counter())
    return spent / done * max(trainer.total_steps - trainer.global_step, 0)


def test(trainer: BaseTrainer, test_loader: DataLoader) -> dict[str, float]:
    """The test split's metrics, evaluated as the trainer evaluates: ``evaluate`` (its eval_step), or for a
    prototype-style trainer that evaluates only in its own ``run_one_epoch``, that loop (nothing saved)."""
    if not trainer.evaluates_in_own_loop():
        return evaluate(trainer, test_loader, prefix="test")
    trainer.evaluating_test = True
    try:
        return evaluation_epoch(trainer, test_loader, trainer.settings.epochs, "test")
    finally:
        trainer.evaluating_test = False


def epoch_metrics(result: Any, split: str) -> dict[str, float]:
    """What ``run_one_epoch`` returned as metrics: None → none, a number → the loss, a mapping → its entries."""
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return {key if "/" in key else f"{split}/{key}": _number(value) for key, value in result.items()}
    name = "train/epoch_loss" if split == "train" else f"{split}/loss"
    return {name: _number(result)}


def _number(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


class LogWindow:
    """Loss and throughput since the last logging step; the loss stays on the device until it is logged."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        self.loss.zero_()
        self.steps, self.samples, self.start = 0, 0, time.perf_counter()

    def metrics(self, trainer: BaseTrainer) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return {
            "train/loss": trainer.reduce_value(self.loss / max(self.steps, 1)).item(),  # the one host sync per window
            "train/lr": trainer.optimizer.param_groups[0]["lr"],
            "train/samples_per_s": self.samples * trainer.world_size / elapsed,
        }


def train_batches(trainer: BaseTrainer, data_loader: DataLoader, epoch: int) -> float:
    """Train on every remaining batch of ``data_loader``; returns the epoch's mean step loss over all ranks."""
    device, settings = trainer.device, trainer.settings
    trainer.model.train()
    bar = trainer.wrap_dataloader_with_tqdm(trainer.rank, data_loader, epoch, train_model=True)
    window = LogWindow(device)
    epoch_loss, epoch_steps = torch.zeros((), device=device), 0
    batches_in_epoch = len(data_loader)
    for batch in bar:
        trainer.batch_in_epoch += 1
        batch = move_to_device(batch, device, non_blocking=device.type == "cuda")
        at_boundary = trainer.batch_in_epoch % settings.grad_accum_steps == 0 or trainer.batch_in_epoch == batches_in_epoch
        loss = train_on_batch(trainer, batch, sync=at_boundary)
        window.samples += batch_size_of(batch)
        trainer.samples_trained += batch_size_of(batch) * trainer.world_size
        if loss is None:  # an accumulation micro-step, or a skipped non-finite step
            continue
        window.loss += loss
        window.steps += 1
        epoch_loss += loss
        epoch_steps += 1
        logged: dict[str, float] = {}
        if trainer.global_step % settings.log_every_steps == 0 or trainer.batch_in_epoch == batches_in_epoch:
            logged = window.metrics(trainer)
            bar.report({"loss": logged["train/loss"], "lr": logged["train/lr"], "samples/s": logged["train/samples_per_s"],
                        "eta": format_duration(eta_seconds(trainer), missing="?")})
            if trainer.run_status is not None:
                trainer.run_status.update(global_step=trainer.global_step, epoch=trainer.epoch)
            trainer.log_metrics(logged)
            window.reset()
        call_hooks(trainer.hooks, "after_train_step", trainer, logged)
        if trainer.should_stop or (settings.max_steps and trainer.global_step >= settings.max_steps):
            trainer.should_stop = True
            break
    return trainer.reduce_value(epoch_loss / max(epoch_steps, 1)).item()


def train_on_batch(trainer: BaseTrainer, batch: Any, sync: bool) -> torch.Tensor | None:
    """Forward and backward one micro-batch; on ``sync``, step the optimizer. Returns the step's loss then."""
    strategy = trainer.strategy
    accumulation = trainer.settings.grad_accum_steps
    with strategy.no_sync(enabled=not sync), strategy.autocast():
        loss = trainer.train_step(batch)
        if isinstance(loss, Mapping):
            loss = loss["loss"]
    if not loss_is_finite(trainer, loss):
        strategy.optimizer.zero_grad(set_to_none=True)
        trainer.accumulated_loss = 0.0
        return None
    strategy.backward(loss / accumulation)
    trainer.accumulated_loss = trainer.accumulated_loss + loss.detach().float() / accumulation
    if not sync:
        return None
    strategy.optimizer_step(trainer.settings.max_grad_norm)  # the optimizer's step hook counts it
    step_loss, trainer.accumulated_loss = trainer.accumulated_loss, 0.0
    return step_loss


def loss_is_finite(trainer: BaseTrainer, loss: torch.Tensor) -> bool:
    """Agree across ranks whether ``loss`` is finite (and whether a rank was interrupted), in one collective.

    A non-finite loss stops the run or skips the step (TRAINER.NONFINITE_LOSS).
    """
    flags = torch.stack([torch.isfinite(loss.detach()).all().float().cpu(), torch.tensor(float(trainer.interrupt_signal is None))])
    finite, not_interrupted = distributed.all_reduce_min(flags.to(trainer.device)).tolist()
    trainer.interrupted = not_interrupted == 0.0
    if finite == 1.0:
        return True
    where = f"epoch {trainer.epoch + 1}, batch {trainer.batch_in_epoch}, after optimizer step {trainer.global_step}"
    if trainer.settings.nonfinite_loss == "skip":
        trainer.logger.warning("non-finite loss at %s: step skipped", where)
        return False
    raise FloatingPointError(f"non-finite loss at {where}; the last checkpoint is intact. "
                             f"Lower the learning rate, check the data, or set TRAINER.NONFINITE_LOSS skip")


@torch.no_grad()
def evaluate(trainer: BaseTrainer, data_loader: DataLoader, prefix: str) -> dict[str, float]:
    """Loss and metrics over the whole set; each rank sees its shard once, results are gathered, not sampled."""
    device = trainer.device
    was_training = trainer.model.training
    trainer.model.eval()
    metric = trainer.build_metrics()
    # sums of loss × weight, weights and samples: the loss is a mean over what eval_step's loss averages
    # (``loss_weight``, e.g. tokens; by default the batch's rows), whatever the batch size or process count
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for batch in trainer.wrap_dataloader_with_tqdm(trainer.rank, data_loader, trainer.epoch + 1, train_model=False):
        batch = move_to_device(batch, device, non_blocking=device.type == "cuda")
        with trainer.strategy.autocast():
            out = trainer.eval_step(batch)
        size = batch_size_of(batch)
        weight = out.get("loss_weight")
        weight = torch.as_tensor(size if weight is None else weight, dtype=torch.float64, device=device).sum()
        totals += torch.stack([out["loss"].detach().double() * weight, weight, torch.tensor(float(size), dtype=torch.float64, device=device)])
        inputs = {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in out.items()
                  if k not in ("loss", "loss_weight")}
        if metric is not None and inputs:  # eval_step returns the loss and the metric's update() arguments
            metric.update(**inputs)
    trainer.model.train(was_training)
    loss_sum, weights, samples = trainer.reduce_value(totals, average=False).tolist()
    result = {f"{prefix}/loss": loss_sum / max(weights, 1e-12), f"{prefix}/num_samples": int(samples)}
    if metric is not None:
        state = {k: distributed.all_gather_cat(v.to(device)).cpu() for k, v in metric.state().items()}
        trainer.last_eval_state = state  # every sample's metric inputs (e.g. probabilities, labels), for reports
        result.update({f"{prefix}/{k}": v for k, v in metric.compute(state).items() if k != "num_samples"})
    return result


__all__ = ["LogWindow", "epoch_metrics", "evaluate", "fit", "loss_is_finite", "run_epoch", "test", "train_batches", "train_on_batch", "validate"]
