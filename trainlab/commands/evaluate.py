"""`trainlab eval`: the metrics of a saved model on any split of the configured data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError

SPLITS = {"train": "TRAIN", "val": "VAL", "validation": "VAL", "test": "TEST"}


def resolve_weights(checkpoint: str) -> Path:
    """The weights of a checkpoint path: a .safetensors file, or a checkpoint directory (whole or sharded) — the
    given one, or a run directory's best checkpoint, else its latest."""
    from ..engine.checkpoint import MODEL_FILE, SHARDED_DIR, best_checkpoint, is_complete, latest_checkpoint

    path = Path(checkpoint)
    if path.is_file():
        return path
    if (path / MODEL_FILE).is_file() or (path / SHARDED_DIR).is_dir() and is_complete(path):
        return path
    checkpoints = path / "checkpoints"
    found = (best_checkpoint(checkpoints) or latest_checkpoint(checkpoints)) if checkpoints.is_dir() else None
    if found is not None:
        return found
    raise ConfigError(f"--checkpoint {checkpoint}: no model weights there (expected a run directory, a checkpoint "
                      f"directory, or a .safetensors file)")


def inference_trainer(cfg: Config, checkpoint: str) -> Any:
    """The configured trainer, set up for evaluation, with the checkpoint's weights in its model.

    The trainer's ``custom_setup`` runs before the weights load, so adapters it adds (LORATrainer) are
    there to receive theirs; shapes must match exactly.
    """
    from ..components import build_model, build_trainer
    from ..engine import distributed

    weights = resolve_weights(checkpoint)
    trainer = build_trainer(cfg, build_model(cfg))
    trainer.setup(distributed.get_rank(), distributed.get_world_size(), for_training=False)
    try:
        if weights.is_dir():  # written by any strategy, at any world size
            trainer.strategy.load_checkpoint_weights(weights)
        else:
            trainer.strategy.load_weights(weights, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{weights} does not fit the configured model ({str(exc).splitlines()[0]}); "
                          f"use the config the checkpoint was trained with") from None
    return trainer


def evaluate_checkpoint(cfg: Config, checkpoint: str, split: str = "test") -> dict[str, float]:
    """Metrics of the model at ``checkpoint`` on DATASET.<split>, across all processes of this job."""
    from ..components import build_datasets
    from ..engine import distributed
    from ..engine.setup import seed_everything
    from ..engine.strategies import resolve_device
    from ..validation import check_components

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    section = SPLITS[split]
    if not cfg.DATASET[section].NAME:
        raise ConfigError(f"DATASET.{section}.NAME is empty: configure the {split} split to evaluate on it")
    check_components(cfg)
    distributed.init_distributed(resolve_device(cfg.TRAINER.DEVICE).type, timeout_s=cfg.TRAINER.TIMEOUT_S)
    try:
        seed_everything(cfg.TRAINER.SEED)
        trainer = inference_trainer(cfg, checkpoint)
        dataset = build_datasets(cfg, trainer.model, splits=(section,))[section.lower()]
        return trainer.evaluate_dataset(dataset, prefix=split)
    finally:
        distributed.cleanup()
