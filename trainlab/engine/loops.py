"""The two loops every trainer shares: one training epoch, and one evaluation pass.

They call the trainer's extension points (``accumulate`` → ``train_step``, ``eval_step``, hooks), so a
subclass changes what happens to a batch without copying the loop.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from . import distributed
from .data import batch_size_of, move_to_device
from .hooks import call_hooks

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer


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


def train_epoch(trainer: BaseTrainer, data_loader: DataLoader, epoch: int) -> float:
    """Train on every remaining batch of ``data_loader``; returns the epoch's mean step loss over all ranks."""
    device = trainer.device
    trainer.model.train()
    bar = trainer.wrap_dataloader_with_tqdm(trainer.rank, data_loader, epoch, train_model=True)
    window = LogWindow(device)
    epoch_loss, epoch_steps = torch.zeros((), device=device), 0
    batches_in_epoch = len(data_loader)
    for batch in bar:
        trainer.batch_in_epoch += 1
        batch = move_to_device(batch, device, non_blocking=device.type == "cuda")
        at_boundary = trainer.batch_in_epoch % trainer.grad_accum_steps == 0 or trainer.batch_in_epoch == batches_in_epoch
        loss = trainer.accumulate(batch, sync=at_boundary)
        window.samples += batch_size_of(batch)
        if loss is None:  # an accumulation micro-step, or a skipped non-finite step
            continue
        window.loss += loss
        window.steps += 1
        epoch_loss += loss
        epoch_steps += 1
        logged: dict[str, float] = {}
        if trainer.global_step % trainer.log_every_steps == 0:
            logged = window.metrics(trainer)
            bar.set_postfix({"loss": logged["train/loss"], "lr": logged["train/lr"], "samples/s": logged["train/samples_per_s"]})
            trainer.log_metrics(logged)
            window.reset()
        call_hooks(trainer.hooks, "after_train_step", trainer, logged)
        if trainer.should_stop or (trainer.max_steps and trainer.global_step >= trainer.max_steps):
            trainer.should_stop = True
            break
    return trainer.reduce_value(epoch_loss / max(epoch_steps, 1)).item()


@torch.no_grad()
def evaluate(trainer: BaseTrainer, data_loader: DataLoader, prefix: str) -> dict[str, float]:
    """Loss and metrics over the whole set; each rank sees its shard once, results are gathered, not sampled."""
    device = trainer.device
    was_training = trainer.model.training
    trainer.model.eval()
    metric = trainer.build_metrics()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for batch in trainer.wrap_dataloader_with_tqdm(trainer.rank, data_loader, trainer.epoch, train_model=False):
        batch = move_to_device(batch, device, non_blocking=device.type == "cuda")
        with trainer.strategy.autocast():
            out = trainer.eval_step(batch)
        size = batch_size_of(batch)
        loss_sum += out["loss"].detach().double() * size
        count += size
        inputs = {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in out.items() if k != "loss"}
        if metric is not None and inputs:  # eval_step returns the loss and the metric's update() arguments
            metric.update(**inputs)
    trainer.model.train(was_training)
    loss_sum, count = trainer.reduce_value(loss_sum, average=False), trainer.reduce_value(count, average=False)
    result = {f"{prefix}/loss": (loss_sum / count.clamp(min=1)).item(), f"{prefix}/num_samples": int(count.item())}
    if metric is not None:
        state = {k: distributed.all_gather_cat(v.to(device)).cpu() for k, v in metric.state().items()}
        result.update({f"{prefix}/{k}": v for k, v in metric.compute(state).items() if k != "num_samples"})
    return result
