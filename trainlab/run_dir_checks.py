"""What a training run needs from the file system, checked before a model loads: a resume has a checkpoint to
continue from, a new run never writes into a folder that already holds work, the model's files and each
dataset's folder exist (and a dataset's rows are well formed where it can tell without a tokenizer).

Only ``trainlab train`` asks this, once, before it launches any process. ``eval``, ``predict`` and ``config``
read configs whose RUN_DIR rightly names an existing run; the processes that torchrun starts (and restarts)
work in the directory the launch vetted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def own_checks(cfg: Config, dotted: str, registry: Any) -> list[str]:
    """What the class named by section ``dotted`` finds wrong before it is built: its ``config_errors`` classmethod,
    called with the section's keywords (nothing when the section has no NAME, the name is unknown, or the class
    has no such method)."""
    from .components import component_kwargs

    section = cfg
    for key in dotted.split("."):
        section = section.get(key, {}) if hasattr(section, "get") else {}
    if not section.get("NAME"):
        return []
    try:
        target = registry.get(section["NAME"])
    except RegistryError:  # reported with the component names
        return []
    check = getattr(target, "config_errors", None)
    return [] if check is None else list(check(**component_kwargs(cfg, dotted, target)))


def dataset_errors(cfg: Config, splits: tuple[str, ...] = DATASET_SPLITS) -> list[str]:
    """What each configured dataset finds wrong with its folders before it is built (``config_errors``)."""
    from .registries import DATASETS

    return [f"DATASET.{split}: {problem}" for split in splits for problem in own_checks(cfg, f"DATASET.{split}", DATASETS)]


def model_errors(cfg: Config) -> list[str]:
    """What the configured model class finds wrong with its files before it loads (its ``config_errors``, e.g. a
    MODEL.PRETRAINED folder that is missing or holds no readable weights)."""
    from .registries import MODELS

    return own_checks(cfg, "MODEL", MODELS)


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
