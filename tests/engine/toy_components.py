"""Small real components for engine tests: a learnable two-class dataset, an MLP, and trainers.

Imported by configs through CUSTOM_IMPORTS, exactly as a user's own module would be.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab import DATASETS, MODELS, TRAINERS, BaseTrainer, DatasetBase
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
