"""The trainer's settings as one typed object, built from the TRAINER defaults and checked once.

``TrainerSettings`` has one field per TRAINER key of ``defaults.py`` (lower-cased, same default, the type of
the default), so names, defaults and documentation have one source. It is frozen: the engine reads it and
never changes it; ``replace`` makes a changed copy. Choices and ranges are checked by ``settings_errors``,
which reports every problem at once; names that need the registries (optimizer, scheduler, loss, strategy)
are checked in ``trainlab.validation``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, did_you_mean
from .defaults import DEFAULTS

# Keys of the TRAINER section that are not engine settings: NAME picks the class.
NOT_SETTINGS = frozenset({"NAME"})

TRAINER_DEFAULTS: dict[str, Any] = {k.lower(): v for k, v in DEFAULTS["TRAINER"].items() if k not in NOT_SETTINGS}

CHOICES: dict[str, tuple[str, ...]] = {
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "dropout_kernel": ("auto", "fast", "native"),
    "monitor_mode": ("min", "max"),
    "nonfinite_loss": ("stop", "skip"),
    "device": ("auto", "cpu", "cuda"),
}
POSITIVE_INTS = ("epochs", "batch_size_train", "batch_size_eval", "grad_accum_steps", "log_every_steps", "keep_last")
NON_NEGATIVE_INTS = ("max_steps", "eval_every_epochs", "num_workers", "save_every_steps", "patience", "warmup_steps", "seed")


def _field_type(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, float):
        return float
    return type(default)


class _SettingsBase:
    """Methods of TrainerSettings (its fields are generated from the defaults below)."""

    def __getitem__(self, key: str) -> Any:  # settings["epochs"], as the first engine read them
        return getattr(self, key)

    def replace(self, **changes: Any) -> TrainerSettings:
        """A copy with ``changes`` (keys checked, values validated)."""
        return TrainerSettings.from_mapping({**self.to_dict(), **changes}, owner="TrainerSettings")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], owner: str = "TRAINER") -> TrainerSettings:
        """Settings from ``options`` (keys in any case) over the defaults; every problem raised at once."""
        errors: list[str] = []
        values = normalize_keys(options, errors, owner)
        settings = {**copy.deepcopy(TRAINER_DEFAULTS), **values}
        errors += settings_errors(settings)
        if errors:
            raise ConfigError("\n".join(errors))
        return TrainerSettings(**settings)


TrainerSettings = dataclasses.make_dataclass(
    "TrainerSettings",
    [
        (name, _field_type(default), dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d)))
        for name, default in TRAINER_DEFAULTS.items()
    ],
    bases=(_SettingsBase,),
    frozen=True,
    namespace={"__doc__": "Every TRAINER setting, typed and checked (see trainlab/config/defaults.py for each effect)."},
)


def normalize_keys(options: Mapping[str, Any], errors: list[str], owner: str = "TRAINER") -> dict[str, Any]:
    """``options`` with lower-case keys; unknown keys become errors with a suggestion."""
    values = {}
    for key, value in options.items():
        name = str(key).lower()
        if name not in TRAINER_DEFAULTS:
            hint = did_you_mean(name.upper(), [k.upper() for k in TRAINER_DEFAULTS]).replace("'", "")
            errors.append(f"{owner} got unknown setting TRAINER.{name.upper()}{hint.replace('mean ', 'mean TRAINER.')}")
            continue
        values[name] = value
    return values


def settings_errors(settings: Mapping[str, Any]) -> list[str]:
    """Every choice and range problem of ``settings`` (lower-case keys), one line each."""
    errors = []
    for key, allowed in CHOICES.items():
        if key in settings and settings[key] not in allowed:
            errors.append(f"TRAINER.{key.upper()} must be one of {', '.join(allowed)}, got {settings[key]!r}")
    for key in POSITIVE_INTS:
        if key in settings and not _is_int(settings[key], minimum=1):
            errors.append(f"TRAINER.{key.upper()} must be a positive integer, got {settings[key]!r}")
    for key in NON_NEGATIVE_INTS:
        if key in settings and not _is_int(settings[key], minimum=0):
            errors.append(f"TRAINER.{key.upper()} must be an integer ≥ 0, got {settings[key]!r}")
    ratio = settings.get("warmup_ratio", 0.0)
    if not (_is_number(ratio) and 0.0 <= ratio < 1.0):
        errors.append(f"TRAINER.WARMUP_RATIO must be a fraction of the run in [0, 1), got {ratio!r}")
    grad_norm = settings.get("max_grad_norm", 0.0)
    if not (_is_number(grad_norm) and grad_norm >= 0):
        errors.append(f"TRAINER.MAX_GRAD_NORM must be ≥ 0 (0 disables clipping), got {grad_norm!r}")
    timeout = settings.get("timeout_s", 1)
    if not (_is_number(timeout) and timeout > 0):
        errors.append(f"TRAINER.TIMEOUT_S must be a number of seconds > 0, got {timeout!r}")
    for key in ("optimizer_kwargs", "scheduler_kwargs", "loss_kwargs"):
        if key in settings and not isinstance(settings[key], Mapping) and settings[key] is not None:
            errors.append(f"TRAINER.{key.upper()} must be a mapping of keyword arguments, got {settings[key]!r}")
    hooks = settings.get("hooks", [])
    if not isinstance(hooks, list) or not all(isinstance(h, Mapping) and h.get("NAME", h.get("name")) for h in hooks):
        errors.append(f"TRAINER.HOOKS must be a list of mappings with a NAME each, got {hooks!r}")
    return errors


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["CHOICES", "TRAINER_DEFAULTS", "TrainerSettings", "normalize_keys", "settings_errors"]
