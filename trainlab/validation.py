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
from .registries import ALL_REGISTRIES, HOOKS, STRATEGIES, TRACKERS
from .registry import accepted_keywords, match_keywords

# Passed by the builder at run time, never set in a config.
RUNTIME_ARGUMENTS = frozenset({"model", "config", "settings", "tokenizer", "processor", "model_name_or_path", "log_queue"})

# Keywords `from_pretrained` takes besides the fields of the model's config class (transformers' documentation).
FROM_PRETRAINED_KEYWORDS = frozenset({
    "torch_dtype", "dtype", "attn_implementation", "revision", "device_map", "low_cpu_mem_usage", "cache_dir",
    "force_download", "local_files_only", "token", "use_safetensors", "variant", "subfolder", "quantization_config",
    "ignore_mismatched_sizes", "output_loading_info", "max_memory", "offload_folder", "offload_state_dict",
    "code_revision", "trust_remote_code", "proxies", "mirror", "from_tf", "from_flax", "state_dict",
    "key_mapping", "tp_plan", "weights_only", "adapter_name", "adapter_kwargs",
})

# Simple annotations a config value can be checked against, and how the expectation reads.
_SIMPLE_TYPES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}


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
    except ConfigError as exc:  # reported; check the rest with the defaults in place of the faulty values
        errors += str(exc).splitlines()
        faulty = {_culprit(line) for line in errors}
        values = {k.lower(): v for k, v in cfg.TRAINER.to_dict().items()
                  if k.lower() in TRAINER_DEFAULTS and f"TRAINER.{k}" not in faulty}
        settings = TrainerSettings(**{**TRAINER_DEFAULTS, **values})
    errors += optimization_errors(settings) + strategy_errors(settings) + hook_errors(settings) + tracker_errors(settings)
    if training:  # data folders, RESUME and RUN_DIR: what `trainlab train` reads and writes
        from .run_dir_checks import training_errors

        errors += training_errors(cfg, settings)
    if errors:
        raise ConfigError("\n".join(_first_per_key(errors)))


def _culprit(line: str) -> str:
    """The dotted key a problem line starts with (after "Unknown key"), e.g. TRAINER.EPOCHS."""
    words = line.removeprefix("Unknown key ").split()
    return words[0].rstrip(":") if words else line


def _first_per_key(errors: list[str]) -> list[str]:
    """One line per faulty key: a wrong type is not reported again as a wrong range."""
    kept: dict[str, str] = {}
    for line in errors:
        kept.setdefault(_culprit(line) if _culprit(line).isupper() else line, line)
    return list(kept.values())


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
        if dotted == "MODEL" and takes_prototype_config(target):  # config_args are free-form
            continue
        kwargs = component_kwargs(cfg, dotted, target)
        errors += _value_errors(dotted, target, kwargs)
        if isinstance(kwargs.get("LORA", kwargs.get("lora")), dict):  # checked now, not when the model loads
            from .peft.settings import LoRASettings

            try:
                LoRASettings.from_config(kwargs.get("LORA", kwargs.get("lora")), section=f"{dotted}.LORA")
            except ConfigError as exc:
                errors += str(exc).splitlines()
        accepted, open_ended = accepted_keywords(target)
        accepted = {a.lower() for a in accepted}
        if open_ended:  # extra keys go on: to from_pretrained where the model forwards them, else unchecked
            forwarded = _from_pretrained_keys(dotted, target, accepted, _section(cfg, dotted).get("PRETRAINED"))
            if forwarded is None:
                continue
            accepted |= forwarded
        if dotted == "TRAINER":
            accepted |= set(TrainerSettings.__dataclass_fields__)
        options = sorted(a.upper() for a in accepted - RUNTIME_ARGUMENTS)
        for key in kwargs:
            if key.lower() not in accepted:
                full = f"{dotted}.{key.upper()}"
                where = "the command-line overrides" if full in cfg.override_keys else source
                hint = did_you_mean(key.upper(), options).replace("'", "").replace("mean ", f"mean {dotted}.")
                listing = "" if open_ended else f" ({name} accepts: {', '.join(options)})"
                errors.append(f"Unknown key {full} in {where}{hint}{listing}")
    return errors


def _from_pretrained_keys(dotted: str, target: Any, accepted: set[str], pretrained: Any) -> set[str] | None:
    """The keys a built-in model passes on to Hugging Face's `from_pretrained`: its config class's fields and
    the loading keywords; None when they cannot be known without a download (or the model forwards nothing)."""
    if dotted != "MODEL" or "pretrained" not in accepted or not isinstance(pretrained, str) or not pretrained:
        return None
    if not getattr(target, "__module__", "").startswith("trainlab.models"):
        return None
    try:
        from transformers import AutoConfig

        hf_config = AutoConfig.from_pretrained(pretrained, local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError):  # not on this machine, or not a model folder: the load reports it
        return None
    import inspect

    fields = set(hf_config.to_dict()) | set(getattr(hf_config, "attribute_map", {}))
    for klass in type(hf_config).__mro__:  # num_labels and the like are properties or constructor-only
        fields |= {n for n, v in vars(klass).items() if isinstance(v, property) and not n.startswith("_")}
        if "__init__" in vars(klass):
            fields |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs"}
    return {f.lower() for f in fields} | FROM_PRETRAINED_KEYWORDS | {"model_type"}


def _value_errors(dotted: str, target: Any, kwargs: dict[str, Any]) -> list[str]:
    """Values whose type clashes with a simple annotation of the constructor (int, float, bool, str, list)."""
    hints = _constructor_hints(target)
    errors = []
    for key, value in kwargs.items():
        expected = hints.get(key.lower())
        if expected is None or (value is None and expected[1]):
            continue
        kind = expected[0]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            errors.append(f"{dotted}.{key.upper()} must be {_SIMPLE_TYPES[kind]}, got {value!r}")
    return errors


def _constructor_hints(target: Any) -> dict[str, tuple[type, bool]]:
    """Parameter → (simple type, None allowed) for the constructor's simply annotated parameters."""
    import inspect
    import types
    import typing

    functions = [k.__dict__["__init__"] for k in target.__mro__ if "__init__" in k.__dict__
                 and not k.__module__.startswith(("torch", "builtins", "transformers"))] if inspect.isclass(target) else [target]
    hints: dict[str, tuple[type, bool]] = {}
    for function in reversed(functions):  # the subclass's annotation wins
        try:
            annotations = typing.get_type_hints(function)
        except (NameError, TypeError, AttributeError):  # an annotation that does not resolve: nothing to check
            annotations = {}
        for name, annotation in annotations.items():
            args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else ()
            optional = type(None) in args
            members = [a for a in args if a is not type(None)] if args else [annotation]
            kinds = [typing.get_origin(m) or m for m in members]
            if len(kinds) == 1 and kinds[0] in _SIMPLE_TYPES:
                hints[name.lower()] = (kinds[0], optional)
            else:
                hints.pop(name.lower(), None)
    return hints


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


def tracker_errors(settings: TrainerSettings) -> list[str]:
    """Unknown names in TRAINER.LOGGERS (a known tracker that cannot start only warns, at run time)."""
    loggers = settings.loggers
    if isinstance(loggers, str) or not isinstance(loggers, (list, tuple)):
        return [f"TRAINER.LOGGERS must be a list such as [tensorboard, jsonl, mlflow, wandb], got {loggers!r}"]
    errors = []
    for name in loggers:
        try:
            TRACKERS.get(str(name))
        except RegistryError as exc:
            errors.append(f"TRAINER.LOGGERS: {exc}")
    return errors


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


__all__ = ["check_components", "component_errors", "hook_errors", "optimization_errors", "prepare_config", "strategy_errors",
           "tracker_errors"]
