"""A user's Stack Overflow project written against the prototype's API: dataset, model and two trainers.

Registered under the same names as TrainLab's built-ins, as the prototype's users did. Only the
registration imports would differ from the prototype; everything else uses its API as it was.
"""

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from datasets import load_from_disk
from torch import nn
from transformers import AutoTokenizer

from trainlab.base_trainer import BaseTrainer
from trainlab.builder import DATASETS, MODELS, TRAINERS
from trainlab.datasets.dataset_base import DatasetBase
from trainlab.module import add_lora_layers, freeze_model, merge_lora_layers, unfreeze_model

MAX_LENGTH = 32  # the prototype padded to 512; 32 tokens keep a CPU run short


@DATASETS.register_module()
class StackOverflowDataset(DatasetBase):
    """Questions saved with ``save_to_disk`` under ``root/train-sample/<split>``."""

    name = "train-sample"

    def __init__(self, root, split="train", transform=None, cache_in_memory=False):
        super().__init__(transform, cache_in_memory)
        self.data = self.load_data(os.path.join(root, self.name, split))

    def load_data(self, path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"Dataset path not found: {path}")
        return load_from_disk(path)

    def collate_fn(self, batch):
        """Raw texts; the trainer tokenizes them inside its loop."""
        return {
            "text": [item["text"] for item in batch],
            "tabular": torch.tensor([item["tabular"] for item in batch], dtype=torch.float32),  # [B, 5]
            "label": torch.tensor([item["label"] for item in batch]),  # [B]
        }


@dataclass
class ClassifierConfig:
    num_labels: int = 2
    dropout: float = 0.1


@MODELS.register_module()
class BertForSequenceClassification(nn.Module):
    """A pretrained BERT encoder with a linear head over its pooled [CLS] token."""

    def __init__(self, bert, config):
        super().__init__()
        self.config = config
        self.bert = bert
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(bert.config.hidden_size, config.num_labels)

    def forward(self, input_ids, token_type_ids, attention_mask=None):
        # The pooled output, so every parameter gets a gradient (DDP fails on unused ones).
        pooled = self.bert(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask).pooler_output
        return self.classifier(self.dropout(pooled))  # [B, H] -> [B, num_labels]

    @classmethod
    def from_pretrained(cls, model_type, config_args=None):
        """The prototype's builder called this with MODEL.PRETRAINED and the other MODEL keys, lower-cased."""
        from transformers import BertModel

        return cls(BertModel.from_pretrained(model_type), ClassifierConfig(**(config_args or {})))


def classification_metrics(preds, labels):
    """Accuracy and macro F1 over the classes that occur in ``preds`` or ``labels``."""
    accuracy = (preds == labels).float().mean().item()
    f1_scores = []
    for label in torch.unique(torch.cat([preds, labels])):
        true_positive = ((preds == label) & (labels == label)).sum().item()
        predicted, actual = (preds == label).sum().item(), (labels == label).sum().item()
        f1_scores.append(2 * true_positive / (predicted + actual))
    return accuracy, sum(f1_scores) / len(f1_scores)


class StackOverflowEpoch:
    """The prototype trainers' ``run_one_epoch``: the loop steps the optimizer itself and returns nothing."""

    def run_one_epoch(self, epoch, total_epoch, data_loader, rank, device, train=True):
        self.model.train() if train else self.model.eval()
        loss_accumulated = 0.0
        preds_all, labels_all = [], []
        for batch in self.wrap_dataloader_with_tqdm(rank, data_loader, epoch, train_model=train):
            inputs = self.tokenizer(
                batch["text"], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
            )
            inputs = {k: v.to(device) for k, v in inputs.items()}
            labels = batch["label"].to(device)
            logits = self.model(
                input_ids=inputs["input_ids"],
                token_type_ids=inputs["token_type_ids"],
                attention_mask=inputs["attention_mask"],
            )
            loss = self.loss_fn(logits, labels)
            if train:
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            if device.type == "cuda":  # the port's one change: the prototype synchronized unconditionally
                torch.cuda.synchronize(device)
            # Every batch, on every rank: all ranks must see the same number of batches.
            loss_accumulated += self.reduce_value(loss, average=True).item()
            preds_all.append(F.softmax(logits, dim=-1).argmax(dim=-1).detach().cpu())
            labels_all.append(labels.detach().cpu())

        if rank == 0:
            accuracy, f1 = classification_metrics(torch.cat(preds_all), torch.cat(labels_all))
            avg_loss_epoch = loss_accumulated / len(data_loader)
            self.logger.info(
                "epoch %d/%d %s: loss=%.6f acc=%.4f f1=%.4f lr=%.3g batches=%d",
                epoch, total_epoch, "train" if train else "eval", avg_loss_epoch, accuracy, f1,
                self.optimizer.param_groups[0]["lr"], len(data_loader),
            )
            self.save_best_model(epoch=epoch, avg_loss_epoch=avg_loss_epoch, train=train)
            self.after_epoch_on_rank0(epoch, total_epoch, device, train)

    def after_epoch_on_rank0(self, epoch, total_epoch, device, train):
        """Rank 0's last word on an epoch, after the best model was saved."""


@TRAINERS.register_module()
class BERTTrainer(StackOverflowEpoch, BaseTrainer):
    """Full fine-tuning; the prototype's constructor without ``project_name``."""

    def __init__(
        self,
        model,
        model_name_or_path,
        log_queue,
        loss_fn=None,
        epochs=1,
        optimizer_class=None,
        optimizer_kwargs=None,
        scheduler_class=None,
        scheduler_kwargs=None,
        save=True,
        output_dir="./",
        output_filename="weight",
    ):
        super().__init__(
            model, log_queue, loss_fn, epochs, optimizer_class, optimizer_kwargs,
            scheduler_class, scheduler_kwargs, save, output_dir, output_filename,
        )
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)


@TRAINERS.register_module()
class LORATrainer(StackOverflowEpoch, BaseTrainer):
    """LoRA (r=8, alpha=16) on query/value; after the last evaluation saves the best weights merged."""

    def __init__(
        self,
        model,
        model_name_or_path,
        log_queue,
        project_name,
        loss_fn=None,
        epochs=1,
        optimizer_class=None,
        optimizer_kwargs=None,
        scheduler_class=None,
        scheduler_kwargs=None,
        save=True,
        output_dir="./",
        output_filename="weight",
    ):
        super().__init__(
            model, log_queue, project_name, loss_fn, epochs, optimizer_class, optimizer_kwargs,
            scheduler_class, scheduler_kwargs, save, output_dir, output_filename,
        )
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)

    def custom_setup(self, rank, world_size):
        # Every process builds its own model, so each adds its own LoRA layers before DDP wraps them.
        add_lora_layers(self.model, r=8, lora_alpha=16)
        freeze_model(self.model)
        if rank == 0:
            total = sum(p.numel() for p in self.model.parameters())
            trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
            self.logger.info("Total parameters: %d", total)
            self.logger.info("Trainable parameters: %d", trainable)

    def after_epoch_on_rank0(self, epoch, total_epoch, device, train):
        # After the last evaluation (not the last training epoch), so the merge uses the run's best weights.
        if train or epoch != total_epoch or self.file_path is None:
            return
        state_dict = torch.load(self.file_path, map_location=device)
        self.model.module.load_state_dict(state_dict["model_state_dict"])
        merge_lora_layers(self.model)
        unfreeze_model(self.model)
        merged_path = os.path.join(os.path.dirname(self.file_path), f"lora_weights_merged_{epoch}.pt")
        torch.save({"model_state_dict": self.model.module.state_dict()}, merged_path)
        self.logger.info("merged LoRA weights saved to %s", merged_path)
