"""The prototype's loop before porting: it waits for the GPU after every step, which fails on a CPU-only machine."""

import torch
from transformers import AutoTokenizer

from trainlab.base_trainer import BaseTrainer
from trainlab.builder import TRAINERS


@TRAINERS.register_module()
class UnportedBERTTrainer(BaseTrainer):
    """Trains like the prototype's BERTTrainer, ``torch.cuda.synchronize(device)`` included."""

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

    def run_one_epoch(self, epoch, total_epoch, data_loader, rank, device, train=True):
        self.model.train() if train else self.model.eval()
        for batch in self.wrap_dataloader_with_tqdm(rank, data_loader, epoch, train_model=train):
            inputs = self.tokenizer(batch["text"], padding=True, truncation=True, max_length=32, return_tensors="pt")
            logits = self.model(**{k: v.to(device) for k, v in inputs.items()})
            loss = self.loss_fn(logits, batch["label"].to(device))
            if train:
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            torch.cuda.synchronize(device)
