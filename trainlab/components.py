"""Config → objects: import the user's modules, then build the model, the datasets and the trainer."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import DEFAULTS, Config
from .config.settings import TRAINER_DEFAULTS, TrainerSettings
from .errors import ConfigError
from .registries import DATASETS, MODELS, TRAINERS
from .registry import accepted_keywords, build


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
            if exc.name and not entry.startswith(exc.name):  # the module exists; something it imports does not
                raise _import_error(entry, exc) from exc
            raise ConfigError(
                f"CUSTOM_IMPORTS: cannot import '{entry}' ({exc}) — check the module name, or run from the folder "
                f"that holds it / add that folder to PYTHONPATH"
            ) from None
        except ConfigError:
            raise
        except Exception as exc:
            raise _import_error(entry, exc) from exc


def _import_error(entry: str, exc: BaseException) -> ConfigError:
    """One line naming where a user module failed (file:line) and why; --debug shows the traceback."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
        reason = f"SyntaxError: {exc.msg}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if "importlib" not in f.filename and "/trainlab/components.py" not in f.filename]
        frame = (user or frames)[-1]
        where = f"{frame.filename}:{frame.lineno}"
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    importing = "" if where.startswith(f"{entry}:") else f" (importing {entry})"
    return ConfigError(f"CUSTOM_IMPORTS: {where}: {reason}{importing} — fix that module (--debug shows the traceback)")


_imported_files: set[Path] = set()


def _import_file(path: Path) -> None:
    if path in _imported_files:  # a second import would register its components twice
        return
    # A prefixed name: a user file called datasets.py must not replace Hugging Face `datasets` in sys.modules.
    name = f"trainlab_custom_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except ConfigError:
        raise
    except Exception as exc:
        del sys.modules[name]
        raise _import_error(str(path), exc) from exc
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


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. tokenizes and caches a dataset); the others then reuse its cache."""
    from .engine import distributed

    if not distributed.is_main_process():
        distributed.barrier()
    yield
    if distributed.is_main_process():
        distributed.barrier()


def section_spec(cfg: Mapping[str, Any], dotted: str, target: Any) -> dict[str, Any]:
    """The ``{NAME, keywords...}`` spec of a section for ``build``.

    TRAINER settings the trainer's constructor does not name are left out: they reach it as its settings.
    """
    kwargs = component_kwargs(cfg, dotted, target)
    if dotted == "TRAINER":
        accepted = {name.lower() for name in accepted_keywords(target)[0]}
        kwargs = {k: v for k, v in kwargs.items() if k in accepted or k not in TRAINER_DEFAULTS}
    return {"NAME": _section(cfg, dotted)["NAME"], **kwargs}


def takes_prototype_config(target: Any) -> bool:
    """Whether a model class is built the prototype's way: ``from_pretrained(model_type=..., config_args={...})``."""
    import inspect

    factory = getattr(target, "from_pretrained", None)
    try:
        params = inspect.signature(factory).parameters if callable(factory) else {}
    except (TypeError, ValueError):
        return False
    return {"model_type", "config_args"} <= set(params)


def build_model(cfg: Config) -> Any:
    """MODEL: ``NAME`` with its keywords, or the prototype's ``NAME.from_pretrained(model_type=PRETRAINED,
    config_args={other keys, lower-cased})`` for a class that defines it so."""
    target = MODELS.get(cfg.MODEL.NAME)
    if takes_prototype_config(target):
        options = {k.lower(): v.to_dict() if isinstance(v, Config) else v for k, v in cfg.MODEL.items() if k not in ("NAME", "PRETRAINED")}
        return target.from_pretrained(model_type=cfg.MODEL.PRETRAINED, config_args=options)
    return build(section_spec(cfg, "MODEL", target), MODELS, where="MODEL")


def build_datasets(cfg: Config, model: Any, splits: Iterable[str] = ("TRAIN", "VAL", "TEST")) -> dict[str, Any]:
    """The datasets of ``splits`` that have a NAME; the model's tokenizer or processor is passed where accepted."""
    runtime = {name: getattr(model, name) for name in ("tokenizer", "processor") if getattr(model, name, None) is not None}
    built = {}
    for split in splits:
        dotted = f"DATASET.{split}"
        if not _section(cfg, dotted).get("NAME"):
            continue
        target = DATASETS.get(cfg.DATASET[split].NAME)
        with main_process_first():
            built[split.lower()] = build(section_spec(cfg, dotted, target), DATASETS, where=dotted, **runtime)
    return built


def build_trainer(cfg: Config, model: Any, settings: TrainerSettings | None = None) -> Any:
    """TRAINER: the trainer class with its own keywords and the runtime objects it takes (model, config, the
    prototype's ``model_name_or_path``, ``tokenizer`` and ``log_queue``); the TRAINER settings reach it whether
    or not its constructor names them."""
    from .engine.trainer_settings import building_with

    settings = settings or trainer_settings(cfg)
    target = TRAINERS.get(cfg.TRAINER.NAME)
    accepted, _ = accepted_keywords(target)
    runtime: dict[str, Any] = {"model": model, "config": cfg, "model_name_or_path": cfg.MODEL.PRETRAINED, "log_queue": None}
    if "tokenizer" in accepted:
        runtime["tokenizer"] = getattr(model, "tokenizer", None) or _load_tokenizer(cfg.MODEL.PRETRAINED)
    with building_with(settings):
        return build(section_spec(cfg, "TRAINER", target), TRAINERS, where="TRAINER", **runtime)


def trainer_settings(cfg: Config) -> TrainerSettings:
    """The engine settings of the TRAINER section (its other keys belong to the trainer class)."""
    return TrainerSettings.from_mapping({k: v.to_dict() if isinstance(v, Config) else v
                                         for k, v in cfg.TRAINER.items() if k.lower() in TRAINER_DEFAULTS})


def _load_tokenizer(path: str) -> Any:
    if not path:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def needs_process_group(settings: TrainerSettings) -> bool:
    """Whether the configured strategy works through a process group even in a single process (FSDP)."""
    from .engine.strategies import STRATEGIES, strategy_name

    return getattr(STRATEGIES.get(strategy_name(settings.strategy, 1)), "needs_process_group", False)


def builds_skeleton(settings: TrainerSettings) -> bool:
    """Whether this process builds the model without weights: a sharded run's ranks other than 0 receive theirs."""
    from .engine import distributed
    from .engine.strategies import STRATEGIES, strategy_name

    world_size = distributed.get_world_size()
    if world_size == 1 or distributed.is_main_process():
        return False
    return getattr(STRATEGIES.get(strategy_name(settings.strategy, world_size)), "loads_from_rank0", False)


def run_training(cfg: Config) -> dict[str, float]:
    """The whole job in this process (one of N under torchrun): build everything from ``cfg`` and train."""
    import gc

    from .engine import distributed
    from .engine.logging import start_job_logging
    from .engine.strategies import resolve_device

    import_config_modules(cfg)  # idempotent; a config checked elsewhere has them already
    settings = trainer_settings(cfg)
    distributed.init_distributed(resolve_device(settings.device).type, timeout_s=settings.timeout_s,
                                 single_process_group=needs_process_group(settings))
    start_job_logging(distributed.get_rank())  # what loading says reaches the run's train.log too
    try:
        metrics = _build_and_fit(cfg, settings)
        # Model, optimizer and any collective they still hold die here, while the process group lives: a gloo
        # worker thread left holding tensors at interpreter exit aborts the process (SIGABRT).
        gc.collect()
        distributed.barrier()
        return metrics
    finally:
        distributed.cleanup()


def _build_and_fit(cfg: Config, settings: TrainerSettings) -> dict[str, float]:
    from .engine.setup import seed_everything
    from .models.skeleton import model_skeleton

    seed_everything(settings.seed)
    started = time.perf_counter()
    with model_skeleton(enabled=builds_skeleton(settings)):
        model = build_model(cfg)
    loaded = time.perf_counter()
    data = build_datasets(cfg, model)
    if "train" not in data:
        raise ConfigError("DATASET.TRAIN.NAME is empty: name the training dataset (see `trainlab list datasets`)")
    trainer = build_trainer(cfg, model, settings)
    trainer.timings.update(load=loaded - started, data=time.perf_counter() - loaded)  # the end-of-run timing line
    return trainer.fit(data["train"], data.get("val"), data.get("test"))
