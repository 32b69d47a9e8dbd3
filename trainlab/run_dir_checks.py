"""What a training run needs from the file system, checked before a model loads: a resume has a checkpoint to
continue from, a new run never writes into a folder that already holds work, the model's files and each
dataset's folder exist (and a dataset's rows are well formed where it can tell without a tokenizer).

Only ``trainlab train`` asks this, once, before it launches any process. ``eval``, ``predict`` and ``config``
read configs whose RUN_DIR rightly names an existing run; the processes that torchrun starts (and restarts)
work in the directory the launch vetted.
"""

from __future__ import annotations

from pathlib import Path

from .config import Config
from .config.settings import TrainerSettings
from .errors import ConfigError, RegistryError

DATASET_SPLITS = ("TRAIN", "VAL", "TEST")


def run_dir_errors(settings: TrainerSettings) -> list[str]:
    """TRAINER.RESUME finds a checkpoint, and a new run's TRAINER.RUN_DIR is missing or empty."""
    from .engine.checkpoint_files import find_resume_checkpoint
    from .engine.setup import run_dir_problem

    try:
        resume_from = find_resume_checkpoint(settings.resume, settings.run_dir, settings.output_dir, settings.project_name)
    except ConfigError as exc:
        return [str(exc)]
    if resume_from is not None or not settings.run_dir:  # a resume continues its run; a timestamped folder is new
        return []
    problem = run_dir_problem(Path(settings.run_dir))
    return [problem] if problem else []


def dataset_errors(cfg: Config, splits: tuple[str, ...] = DATASET_SPLITS) -> list[str]:
    """What each configured dataset finds wrong with its folders before it is built (``config_errors``)."""
    from .components import component_kwargs
    from .registries import DATASETS

    errors = []
    for split in splits:
        section = cfg.get("DATASET", {}).get(split, {})
        if not section.get("NAME"):
            continue
        try:
            target = DATASETS.get(section["NAME"])
        except RegistryError:  # reported with the component names
            continue
        check = getattr(target, "config_errors", None)
        if check is not None:
            errors += [f"DATASET.{split}: {problem}" for problem in check(**component_kwargs(cfg, f"DATASET.{split}", target))]
    return errors


def model_errors(cfg: Config) -> list[str]:
    """What the configured model class finds wrong with its files before it loads (its ``config_errors``, e.g. a
    MODEL.PRETRAINED folder that is missing or holds no readable weights)."""
    from .components import component_kwargs
    from .registries import MODELS

    name = cfg.get("MODEL", {}).get("NAME")
    try:
        target = MODELS.get(name) if name else None
    except RegistryError:  # reported with the component names
        return []
    check = getattr(target, "config_errors", None)
    return [] if check is None else list(check(**component_kwargs(cfg, "MODEL", target)))


def load_from_errors(settings: TrainerSettings) -> list[str]:
    """TRAINER.LOAD_FROM names readable weights: a .safetensors file (or a checkpoint directory holding one)
    whose header opens (read only; a truncated or foreign file is named before anything loads)."""
    if not settings.load_from:
        return []
    from safetensors import safe_open

    target = Path(settings.load_from)
    file = target / "model.safetensors" if target.is_dir() else target
    if not file.is_file():
        return [f"TRAINER.LOAD_FROM {settings.load_from}: no such file (or no model.safetensors in that directory)"]
    try:
        with safe_open(str(file), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # noqa: BLE001 — safetensors raises its own types for damaged files
        return [f"TRAINER.LOAD_FROM {file} is not a readable .safetensors file ({' '.join(str(exc).split())[:120]})"]
    return []


def training_errors(cfg: Config, settings: TrainerSettings) -> list[str]:
    """Everything above, as lines for the one ConfigError of ``trainlab train``'s pre-launch checks."""
    return model_errors(cfg) + dataset_errors(cfg) + run_dir_errors(settings) + load_from_errors(settings)


__all__ = ["dataset_errors", "load_from_errors", "model_errors", "run_dir_errors", "training_errors"]
