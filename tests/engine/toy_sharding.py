"""Components for sharding tests: samples that say who they are, and per-rank measurements of local shards."""

from __future__ import annotations

import json

import torch

from trainlab import DATASETS, HOOKS, TRAINERS, Hook

# Imported after toy_components.py (listed first in CUSTOM_IMPORTS): build on what it registered.
BlobsDataset, BlobsTrainer = DATASETS.get("BlobsDataset"), TRAINERS.get("BlobsTrainer")


@DATASETS.register_module()
class IndexedBlobsDataset(BlobsDataset):
    """BlobsDataset whose items also carry their index."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data = [{**item, "index": torch.tensor(i)} for i, item in enumerate(self.data)]


@TRAINERS.register_module()
class SampleLogTrainer(BlobsTrainer):
    """Writes the sample indices of every training batch to RUN_DIR/samples-rank<r>.jsonl (epoch, step, ids)."""

    def train_step(self, batch):
        ids = batch.pop("index").tolist()
        with open(self.run_dir / f"samples-rank{self.rank}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"epoch": self.epoch, "step": self.global_step + 1, "ids": ids}) + "\n")
        return super().train_step(batch)

    def eval_step(self, batch):
        batch.pop("index")
        return super().eval_step(batch)


@HOOKS.register_module()
class ShardBytesHook(Hook):
    """After the first optimizer step, writes this rank's bytes of parameters, gradients (one per trainable
    parameter, the size of its local shard) and optimizer state, measured from the local tensors."""

    def after_train_step(self, trainer, metrics):
        if trainer.global_step != 1:
            return

        def local(tensor):
            tensor = tensor.to_local() if hasattr(tensor, "to_local") else tensor
            return tensor.numel() * tensor.element_size()

        params = list(trainer.unwrapped_model.parameters())
        state = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
        sizes = {"params": sum(local(p) for p in params), "grads": sum(local(p) for p in params if p.requires_grad),
                 "optimizer": sum(local(v) for v in state)}
        (trainer.run_dir / f"bytes-rank{trainer.rank}.json").write_text(json.dumps(sizes))


@HOOKS.register_module()
class LoadRssHook(Hook):
    """Before the first step, writes this process's peak resident memory so far (the loading peak), in MiB."""

    def before_train(self, trainer):
        import resource

        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        (trainer.run_dir / f"rss-rank{trainer.rank}.json").write_text(json.dumps({"peak_mib": peak_mib}))
