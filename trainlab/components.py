"""Config → objects: import user modules, check every component's keys, build model, datasets and trainer."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import COMPONENT_SECTIONS, DEFAULTS, Config
from .errors import ConfigError, RegistryError, did_you_mean
from .registries import ALL_REGISTRIES, DATASETS, MODELS, TRAINERS
from .registry import accepted_keywords


def import_modules(modules: Iterable[str], base_dir: str | Path | None = None) -> None:
    """Import user modules (dotted names, or .py paths relative to ``base_dir``) so their components register."""
    for entry in [str(m) for m in modules]:
        if entry.endswith(".py") or "/" in entry:
            path = Path(entry) if Path(entry).is_absolute() or base_dir is None else Path(base_dir) / entry
            if not path.is_file() and Path(entry).is_file():
                path = Path(entry)
            if not path.is_file():
                raise ConfigError(f"CUSTOM_IMPORTS: file {entry} not found (looked at {path}) — fix the path")
            _import_file(path.resolve())
            continue
        for folder in (str(Path.cwd()), str(base_dir) if base_dir else None):
            if folder and folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            importlib.import_module(entry)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"CUSTOM_IMPORTS: cannot import '{entry}' ({exc}) — check the module name, or run from the folder "
                f"that holds it / add that folder to PYTHONPATH"
            ) from None


_imported_files: set[Path] = set()


def _import_file(path: Path) -> None:
    if path in _imported_files:  # a second import would register its components twice
        return
    # A prefixed name: a user file called datasets.py must not replace Hugging Face `datasets` in sys.modules.
    name = f"trainlab_custom_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    _imported_files.add(path)


def import_config_modules(cfg: Config) -> None:
    base_dir = Path(cfg.source).parent if cfg.source else None
    import_modules(cfg.get("CUSTOM_IMPORTS", []), base_dir)


def _section(cfg: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node


def _schema(dotted: str) -> Mapping[str, Any]:
    return _section(DEFAULTS, dotted)


def component_kwargs(cfg: Mapping[str, Any], dotted: str, target: Any) -> dict[str, Any]:
    """The section's keys as keywords for ``target``: extra keys always, default keys only where they matter.

    A key from the defaults (ROOT, SPLIT, PRETRAINED...) is passed when ``target`` accepts it or when the
    user changed it; an empty TRANSFORM is dropped.
    """
    section, schema = _section(cfg, dotted), _schema(dotted)
    accepted, open_ended = accepted_keywords(target)
    kwargs = {}
    for key, value in section.items():
        if key == "NAME":
            continue
        name = key.lower()
        if key in schema and not (name in accepted or open_ended) and value == schema[key]:
            continue
        if key == "TRANSFORM":
            value = resolve_callable(value) if value else None
        kwargs[name] = value.to_dict() if isinstance(value, Config) else value
    return kwargs


def resolve_callable(path: str) -> Any:
    """``package.module:function`` (or ``package.module.function``) → the object."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"cannot resolve '{path}': write it as package.module:function") from None


# Passed by the builder at run time, never set in a config.
RUNTIME_ARGUMENTS = frozenset({"model", "config", "tokenizer", "processor"})


def check_components(cfg: Config) -> None:
    """Every named component exists and accepts its section's keys; all problems reported together."""
    errors = []
    source = cfg.source or "the config"
    for dotted, registry_name in COMPONENT_SECTIONS.items():
        name = _section(cfg, dotted).get("NAME")
        if not name:
            continue
        registry = ALL_REGISTRIES[registry_name]
        try:
            target = registry.get(name)
        except RegistryError as exc:
            errors.append(f"{dotted}.NAME: {exc}")
            continue
        accepted, open_ended = accepted_keywords(target)
        if open_ended:
            continue
        options = sorted(a.upper() for a in accepted - RUNTIME_ARGUMENTS)
        for key in component_kwargs(cfg, dotted, target):
            if key not in accepted:
                full = f"{dotted}.{key.upper()}"
                where = "the command-line overrides" if full in cfg.override_keys else source
                hint = did_you_mean(key.upper(), options).replace("'", "").replace("mean ", f"mean {dotted}.")
                errors.append(f"Unknown key {full} in {where}{hint} ({name} accepts: {', '.join(options)})")
    if errors:
        raise ConfigError("\n".join(errors))


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. tokenizes and caches a dataset); the others then reuse its cache."""
    from .engine import distributed

    if not distributed.is_main_process():
        distributed.barrier()
    yield
    if distributed.is_main_process():
        distributed.barrier()


def build_model(cfg: Config) -> Any:
    target = MODELS.get(cfg.MODEL.NAME)
    return target(**component_kwargs(cfg, "MODEL", target))


def build_datasets(
    cfg: Config, model: Any, splits: Iterable[str] = ("TRAIN", "VAL", "TEST")
) -> dict[str, Any]:
    """The datasets of ``splits`` that have a NAME; the model's tokenizer or processor is passed where accepted."""
    runtime = {
        name: getattr(model, name)
        for name in ("tokenizer", "processor")
        if getattr(model, name, None) is not None
    }
    built = {}
    for split in splits:
        dotted = f"DATASET.{split}"
        if not _section(cfg, dotted).get("NAME"):
            continue
        target = DATASETS.get(cfg.DATASET[split].NAME)
        accepted, open_ended = accepted_keywords(target)
        extra = {k: v for k, v in runtime.items() if k in accepted or open_ended}
        with main_process_first():
            built[split.lower()] = target(**component_kwargs(cfg, dotted, target), **extra)
    return built


def build_trainer(cfg: Config, model: Any) -> Any:
    target = TRAINERS.get(cfg.TRAINER.NAME)
    return target(model=model, config=cfg, **component_kwargs(cfg, "TRAINER", target))


def run_training(cfg: Config) -> dict[str, float]:
    """The whole job in this process (one of N under torchrun): build everything from ``cfg`` and train."""
    from .engine import distributed
    from .engine.setup import seed_everything
    from .engine.strategies import resolve_device

    import_config_modules(cfg)
    check_components(cfg)
    distributed.init_distributed(resolve_device(cfg.TRAINER.DEVICE).type, timeout_s=cfg.TRAINER.TIMEOUT_S)
    try:
        seed_everything(cfg.TRAINER.SEED)
        model = build_model(cfg)
        data = build_datasets(cfg, model)
        if "train" not in data:
            raise ConfigError(
                "DATASET.TRAIN.NAME is empty: name the training dataset (see `trainlab list datasets`)"
            )
        trainer = build_trainer(cfg, model)
        return trainer.fit(data["train"], data.get("val"), data.get("test"))
    finally:
        distributed.cleanup()
