"""Small real components for engine tests: a learnable two-class dataset, an MLP, and trainers.

Imported by configs through CUSTOM_IMPORTS, exactly as a user's own module would be.
"""

from __future__ import annotations

import os
import signal
import time

import safetensors.torch
import torch
from safetensors.torch import save_file
from torch import nn

from trainlab import DATASETS, HOOKS, MODELS, TRAINERS, BaseTrainer, DatasetBase, Hook
from trainlab.metrics import ClassificationMetrics


@DATASETS.register_module()
class BlobsDataset(DatasetBase):
    """Two Gaussian blobs in ``dim`` dimensions; the label is which blob a point came from."""

    def __init__(self, size: int = 64, dim: int = 8, seed: int = 0, poison_index: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        generator = torch.Generator().manual_seed(seed)
        labels = torch.arange(size) % 2
        centers = torch.randn(2, dim, generator=generator) * 2
        features = centers[labels] + torch.randn(size, dim, generator=generator)
        if poison_index >= 0:  # a malformed row, to test how non-finite losses are handled
            features[poison_index] = float("nan")
        self.data = [{"features": f, "labels": l} for f, l in zip(features, labels)]


@MODELS.register_module()
class MLPClassifier(nn.Module):
    def __init__(self, dim: int = 8, hidden: int = 16, num_labels: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_labels))

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(features)


@MODELS.register_module()
class FeaturesOnlyMLP(MLPClassifier):
    """A model whose forward takes the features alone, as prototype-era models often did."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


@TRAINERS.register_module()
class BlobsTrainer(BaseTrainer):
    """Overrides only what it needs: the metrics to compute."""

    def build_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(num_classes=2)


@TRAINERS.register_module()
class PrototypeStyleTrainer(BaseTrainer):
    """Written against the prototype's API: only custom_setup and run_one_epoch are overridden."""

    def custom_setup(self, rank, world_size):
        self.model.extra_head = nn.Identity()  # a per-process model change before DDP wrapping

    def run_one_epoch(self, epoch, total_epoch, data_loader, rank, device, train=True):
        self.model.train() if train else self.model.eval()
        total_loss = torch.zeros((), device=device)
        for batch in self.wrap_dataloader_with_tqdm(rank, data_loader, epoch, train):
            features, labels = batch["features"].to(device), batch["labels"].to(device)
            with torch.set_grad_enabled(train):
                loss = self.loss_fn(self.model(features), labels)
            if train:
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            total_loss += loss.detach()
        avg_loss = self.reduce_value(total_loss / len(data_loader)).item()
        if not train:
            self.save_best_model(epoch, avg_loss, train)
        self.logger.info("epoch %d %s loss %.4f", epoch, "train" if train else "val", avg_loss)
        return avg_loss


@TRAINERS.register_module()
class FailingTrainer(BlobsTrainer):
    """Raises on one rank at one step, to check that the whole run stops promptly."""

    def __init__(self, *args, fail_rank: int = 1, fail_step: int = 3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_rank, self.fail_step = fail_rank, fail_step

    def train_step(self, batch):
        if self.rank == self.fail_rank and self.global_step == self.fail_step:
            raise RuntimeError(f"deliberate failure on rank {self.rank} at step {self.global_step}")
        return super().train_step(batch)


@HOOKS.register_module()
class KillAtStepHook(Hook):
    """SIGKILLs this process after optimizer step ``step`` (after any checkpoint of that step)."""

    priority = 90

    def __init__(self, step: int, rank: int = 0) -> None:
        self.step, self.rank = step, rank

    def after_train_step(self, trainer, metrics):
        if trainer.global_step == self.step and trainer.rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillDuringSaveHook(Hook):
    """At step ``step``, makes the checkpoint writer die after writing half of the model file."""

    priority = 10  # before the checkpoint hook saves this step

    def __init__(self, step: int) -> None:
        self.step = step

    def after_train_step(self, trainer, metrics):
        if trainer.global_step != self.step:
            return

        def dying_save_model(model, filename, *args, **kwargs):
            with open(filename, "wb") as handle:
                handle.write(b"\0" * 100)
                handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        safetensors.torch.save_model = dying_save_model


@HOOKS.register_module()
class SlowStepsHook(Hook):
    """Sleeps after each step so a test can signal the process mid-run."""

    def __init__(self, seconds: float = 0.2) -> None:
        self.seconds = seconds

    def after_train_step(self, trainer, metrics):
        time.sleep(self.seconds)


@HOOKS.register_module()
class ParamDumpHook(Hook):
    """Each rank writes its final parameters to RUN_DIR/params-rank<r>.safetensors."""

    def after_train(self, trainer):
        tensors = {k: v.detach().cpu().contiguous() for k, v in trainer.unwrapped_model.state_dict().items()}
        save_file(tensors, str(trainer.run_dir / f"params-rank{trainer.rank}.safetensors"))
