"""The trainer's keyword arguments come from the TRAINER defaults: one source for names, defaults and docs."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

from ..config.defaults import DEFAULTS
from ..errors import ConfigError, did_you_mean

TRAINER_DEFAULTS: dict[str, Any] = {k.lower(): v for k, v in DEFAULTS["TRAINER"].items() if k != "NAME"}

CHOICES = {
    "precision": ("fp32", "bf16", "fp16"),
    "monitor_mode": ("min", "max"),
    "nonfinite_loss": ("stop", "skip"),
    "device": ("auto", "cpu", "cuda"),
}


def resolve_settings(options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Fill ``options`` up with the TRAINER defaults; unknown names and bad choices raise one ConfigError."""
    errors = []
    for key in options:
        if key not in TRAINER_DEFAULTS:
            hint = did_you_mean(key.upper(), [k.upper() for k in TRAINER_DEFAULTS]).replace("'", "")
            errors.append(f"{owner} got unknown setting TRAINER.{key.upper()}{hint.replace('mean ', 'mean TRAINER.')}")
    settings = {**copy.deepcopy(TRAINER_DEFAULTS), **options}
    for key, allowed in CHOICES.items():
        if settings[key] not in allowed:
            errors.append(f"TRAINER.{key.upper()} must be one of {', '.join(allowed)}, got '{settings[key]}'")
    for key in ("epochs", "batch_size_train", "batch_size_eval", "grad_accum_steps", "log_every_steps"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            errors.append(f"TRAINER.{key.upper()} must be a positive integer, got {settings[key]!r}")
    if errors:
        raise ConfigError("\n".join(errors))
    return settings


def settings_signature(init: Any) -> inspect.Signature:
    """``init``'s signature with ``**options`` spelled out as the keyword-only TRAINER settings.

    Lets help(), IDEs and the builder's keyword check see every accepted setting.
    """
    params = [p for p in inspect.signature(init).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in TRAINER_DEFAULTS.items()
    ]
    return inspect.Signature(params)
