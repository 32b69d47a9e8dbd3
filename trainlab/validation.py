"""Every check a config gets before anything runs: component names and keywords, settings, optimizer,
scheduler, loss, strategy and hooks — all problems reported together, before a model loads or a directory
is created. What only a library can judge (torch's value checks) is asked of it on a throw-away parameter
and translated into one line naming the config key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .config import COMPONENT_SECTIONS, Config, load_config
from .config.settings import TRAINER_DEFAULTS, TrainerSettings
from .errors import ConfigError, RegistryError, TrainLabError, did_you_mean
from .registries import ALL_REGISTRIES, HOOKS, STRATEGIES
from .registry import accepted_keywords, match_keywords

# Passed by the builder at run time, never set in a config.
RUNTIME_ARGUMENTS = frozenset({"model", "config", "settings", "tokenizer", "processor", "model_name_or_path", "log_queue"})


def prepare_config(path: str, overrides: Sequence[str] = (), imports: Iterable[str] = (), *, training: bool = False) -> Config:
    """Load ``path`` with ``overrides``, import the modules it names, and check everything (with ``training``,
    also the data folders, RESUME and RUN_DIR a training run reads and writes); raises one ConfigError listing
    every problem."""
    from .components import import_config_modules, import_modules

    import_modules(imports)
    errors: list[str] = []
    cfg = load_config(path, overrides, errors=errors)
    import_config_modules(cfg)
    check_components(cfg, errors, training=training)
    return cfg


def check_components(cfg: Config, errors: list[str] | None = None, *, training: bool = False) -> None:
    """Every named component exists and accepts its section's keys, and the TRAINER settings hold; raises one
    ConfigError with these problems and ``errors`` found before."""
    from .components import trainer_settings

    errors = [*(errors or []), *component_errors(cfg)]
    try:
        settings = trainer_settings(cfg)
    except ConfigError as exc:  # reported; go on checking the rest as the config has it
        errors += str(exc).splitlines()
        values = {k.lower(): v for k, v in cfg.TRAINER.to_dict().items() if k.lower() in TRAINER_DEFAULTS}
        settings = TrainerSettings(**{**TRAINER_DEFAULTS, **values})
    errors += optimization_errors(settings) + strategy_errors(settings) + hook_errors(settings)
    if training:  # data folders, RESUME and RUN_DIR: what `trainlab train` reads and writes
        from .run_dir_checks import training_errors

        errors += training_errors(cfg, settings)
    if errors:
        raise ConfigError("\n".join(dict.fromkeys(errors)))


def _section(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node.get(part, {}) if hasattr(node, "get") else {}
    return node


def component_errors(cfg: Config) -> list[str]:
    """Unknown component names and keys their constructors do not take (TRAINER settings always allowed)."""
    from .components import component_kwargs, takes_prototype_config

    errors = []
    source = cfg.source or "the config"
    for dotted, registry_name in COMPONENT_SECTIONS.items():
        name = _section(cfg, dotted).get("NAME")
        if not name:
            continue
        try:
            target = ALL_REGISTRIES[registry_name].get(name)
        except RegistryError as exc:
            errors.append(f"{dotted}.NAME: {exc}")
            continue
        accepted, open_ended = accepted_keywords(target)
        if open_ended or (dotted == "MODEL" and takes_prototype_config(target)):  # config_args are free-form
            continue
        accepted = {a.lower() for a in accepted}
        if dotted == "TRAINER":
            accepted |= set(TrainerSettings.__dataclass_fields__)
        options = sorted(a.upper() for a in accepted - RUNTIME_ARGUMENTS)
        for key in component_kwargs(cfg, dotted, target):
            if key.lower() not in accepted:
                full = f"{dotted}.{key.upper()}"
                where = "the command-line overrides" if full in cfg.override_keys else source
                hint = did_you_mean(key.upper(), options).replace("'", "").replace("mean ", f"mean {dotted}.")
                errors.append(f"Unknown key {full} in {where}{hint} ({name} accepts: {', '.join(options)})")
    return errors


def optimization_errors(settings: TrainerSettings) -> list[str]:
    """Optimizer, scheduler and loss: registered names, keywords they take, values torch accepts."""
    import torch

    from .optim import build_loss, build_optimizer, build_scheduler
    from .registries import LOSSES, OPTIMIZERS, SCHEDULERS

    errors = []
    probe = torch.nn.Linear(2, 2)  # a throw-away model: torch checks the values as it would in the run
    optimizer = None
    if _known(OPTIMIZERS, settings.optimizer_class, "OPTIMIZER_CLASS", errors):
        optimizer = _attempt(lambda: build_optimizer(probe, settings.optimizer_class, settings.optimizer_kwargs),
                             "OPTIMIZER_KWARGS", errors)
    if optimizer is not None and any(group["lr"] <= 0 for group in optimizer.param_groups):
        errors.append(f"TRAINER.OPTIMIZER_KWARGS.LR must be > 0, got {optimizer.param_groups[0]['lr']} — "
                      f"a run at learning rate 0 trains nothing")
    if settings.scheduler_class and _known(SCHEDULERS, settings.scheduler_class, "SCHEDULER_CLASS", errors):
        optimizer = optimizer or torch.optim.SGD(probe.parameters(), lr=0.1)
        _attempt(lambda: build_scheduler(optimizer, settings.scheduler_class, settings.scheduler_kwargs, steps_per_epoch=10,
                                         epochs=settings.epochs, max_steps=settings.max_steps,
                                         warmup_steps=settings.warmup_steps, warmup_ratio=settings.warmup_ratio),
                 "SCHEDULER_KWARGS", errors)
    if settings.loss_fn and _known(LOSSES, settings.loss_fn, "LOSS_FN", errors):
        _attempt(lambda: build_loss(settings.loss_fn, settings.loss_kwargs), "LOSS_KWARGS", errors)
    return errors


def _known(registry: Any, name: str, key: str, errors: list[str]) -> bool:
    try:
        registry.get(name)
    except RegistryError as exc:
        errors.append(f"TRAINER.{key}: {_one_line(exc)}")
        return False
    return True


def _attempt(make: Any, key: str, errors: list[str]) -> Any:
    try:
        return make()
    except (TrainLabError, ValueError, TypeError, RuntimeError) as exc:
        errors.append(f"TRAINER.{key}: {_one_line(exc)}")
        return None


def strategy_errors(settings: TrainerSettings) -> list[str]:
    """A registered strategy, and a device and precision this machine has."""
    import torch

    errors = []
    if settings.strategy != "auto" and not STRATEGIES.exists(settings.strategy):
        errors.append(f"TRAINER.STRATEGY {settings.strategy!r} is not a strategy{did_you_mean(settings.strategy, STRATEGIES.names())}; "
                      f"choose auto or one of: {', '.join(sorted(n for n in STRATEGIES.names() if n.islower()))}")
    cuda = torch.cuda.is_available()
    if settings.device == "cuda" and not cuda:
        errors.append("TRAINER.DEVICE is cuda but no CUDA device is visible; set TRAINER.DEVICE auto or cpu")
    if settings.precision == "fp16" and (settings.device == "cpu" or not cuda):
        errors.append("TRAINER.PRECISION fp16 needs a CUDA device; use bf16 (works on CPU) or fp32")
    return errors


def hook_errors(settings: TrainerSettings) -> list[str]:
    errors = []
    for spec in settings.hooks:
        name = spec.get("NAME", spec.get("name"))
        try:
            target = HOOKS.get(name)
            match_keywords(target, {k: v for k, v in spec.items() if k not in ("NAME", "name")}, f"TRAINER.HOOKS {name}")
        except RegistryError as exc:
            errors.append(f"TRAINER.HOOKS: {exc}")
    return errors


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


__all__ = ["check_components", "component_errors", "hook_errors", "optimization_errors", "prepare_config", "strategy_errors"]
