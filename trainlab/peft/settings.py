"""One LoRA vocabulary: a ``MODEL.LORA`` section (and the LoRA keys of ``MODEL.PEFT``) read into LoRASettings.

Keys are case-insensitive; the same keys mean the same layers and trained parameters for TrainLab's own
LoRA (any model) and for Hugging Face PEFT (``TransformersModelWrapper`` with ``MODEL.PEFT``).

==============  ===============  ===========================================================================
key             default          effect
==============  ===============  ===========================================================================
R               8                rank of the update ``B A``
ALPHA           16               the update is scaled by ALPHA / R (also spelled LORA_ALPHA, as PEFT does)
DROPOUT         0.1              dropout on the input of the update (also spelled LORA_DROPOUT)
TARGET_MODULES  [query, value]   layers to adapt: a module name or its trailing part (``query`` adapts
                                 ``bert.encoder.layer.0.attention.self.query``); globs allowed (MODULE_NAMES)
TARGET_REGEX    null             instead of TARGET_MODULES: a regex the whole module name must match
IGNORE_LAYERS   []               layers left alone: layer indices (``0`` skips ``encoder.layer.0``), as the
                                 prototype's ``add_lora_layers``, or name patterns (``layer.0``)
TRAINABLE       null             modules that train next to LoRA (PEFT's MODULES_TO_SAVE); null: the
                                 ``classifier`` when the model has one, as the prototype's ``freeze_model``
==============  ===============  ===========================================================================

Weights the checkpoint lacked (a new head) always train; the rest of the model is frozen.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Collection, Mapping
from typing import Any

from torch import nn

from trainlab.errors import ConfigError, did_you_mean

from .params import module_matches, name_matches

# other spellings of the same settings: PEFT's LoraConfig fields and the prototype's add_lora_layers arguments
ALIASES = {
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "module_names": "target_modules",
    "modules_to_save": "trainable",
}
# what TRAINABLE null means: the prototype's freeze_model kept the classification head training
DEFAULT_TRAINABLE = ("classifier",)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclasses.dataclass(frozen=True)
class LoRASettings:
    """Parsed LoRA settings; ``section`` (e.g. ``MODEL.LORA``) names the keys in error messages."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    target_regex: str | None = None
    ignore_layers: tuple[int | str, ...] = ()
    trainable: tuple[str, ...] | None = None
    section: str = dataclasses.field(default="MODEL.LORA", compare=False)

    @classmethod
    def config_keys(cls) -> list[str]:
        """The config keys, upper-case, in documentation order."""
        return [field.name.upper() for field in dataclasses.fields(cls) if field.name != "section"]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, section: str = "MODEL.LORA") -> LoRASettings:
        """Read a config section; unknown keys and bad values raise one ConfigError naming them all."""
        return cls.split_config(cfg, section)[0]

    @classmethod
    def split_config(
        cls,
        cfg: Mapping[str, Any] | None,
        section: str,
        extra_keys: Collection[str] = (),
        extras_named: str = "",
    ) -> tuple[LoRASettings, dict[str, Any]]:
        """Read the LoRA keys of ``cfg``; return them parsed, and the ``extra_keys`` (lower-cased) it holds.

        ``extra_keys`` are keys another consumer takes, such as PEFT's own LoraConfig fields in MODEL.PEFT;
        ``extras_named`` describes them in the error that lists the keys.
        """
        known = {key.lower() for key in cls.config_keys()}
        values: dict[str, tuple[str, Any]] = {}  # setting -> (the key as spelled, value)
        extras: dict[str, Any] = {}
        unknown: list[str] = []
        errors: list[str] = []
        for raw_key, value in (cfg or {}).items():
            key = str(raw_key).lower()
            name = ALIASES.get(key, key)
            if name in known:
                if name in values:
                    first = values[name][0].upper()
                    errors.append(
                        f"{section}.{first} and {section}.{key.upper()} set the same thing; keep one"
                    )
                values[name] = (key, value)
            elif key in extra_keys:
                extras[key] = value
            else:
                unknown.append(key.upper())
        if unknown:
            candidates = [*cls.config_keys(), *(k.upper() for k in (*ALIASES, *extra_keys))]
            for key in unknown:
                hint = did_you_mean(key, candidates).replace("'", "").replace("mean ", f"mean {section}.")
                errors.append(f"Unknown key {section}.{key}{hint}")
            errors[-1] += (
                f" ({section} takes {', '.join(cls.config_keys())}{extras_named and ' and ' + extras_named})"
            )
        parsed = {
            name: _PARSERS[name](value, f"{section}.{key.upper()}", errors)
            for name, (key, value) in values.items()
        }
        settings = cls(**parsed, section=section)
        if not settings.target_modules and not settings.target_regex:
            errors.append(f"{section}.TARGET_MODULES is empty; name the layers to adapt, e.g. [query, value]")
        if errors:
            raise ConfigError("; ".join(errors))
        return settings, extras

    def layer_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`trainlab.peft.lora.add_lora_layers`."""
        return {
            "module_names": self.target_modules,
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "ignore_layers": self.ignore_layers,
            "target_regex": self.target_regex,
        }

    def trainable_patterns(self, model: nn.Module) -> list[str]:
        """Parameter patterns that train next to the LoRA weights: TRAINABLE, or the classifier if any."""
        if self.trainable is not None:
            return list(self.trainable)
        names = [name for name, _ in model.named_parameters()]
        return [
            pattern for pattern in DEFAULT_TRAINABLE if any(name_matches(name, pattern) for name in names)
        ]

    def to_peft_config(self, model: nn.Module | None = None, **peft_fields: Any) -> Any:
        """A ``peft.LoraConfig`` adapting the same layers; ``peft_fields`` are PEFT-only (task_type, bias...).

        With ``model``, TRAINABLE is checked against its module names and the default resolved.
        """
        from peft import LoraConfig

        options: dict[str, Any] = {
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.peft_target_modules(),
            **peft_fields,
        }
        if self.ignore_layers:
            options["exclude_modules"] = ignore_regex(self.ignore_layers)
        modules_to_save = self.peft_modules_to_save(model)
        if modules_to_save:
            options["modules_to_save"] = modules_to_save
        try:
            return LoraConfig(**options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{self.section} is not a valid peft LoraConfig: {error}") from error

    def peft_target_modules(self) -> str | list[str]:
        """PEFT's ``target_modules``: a list (name or suffix, PEFT's own rule) or a regex for globs."""
        if self.target_regex:
            return self.target_regex
        if any(_GLOB_CHARS.search(pattern) for pattern in self.target_modules):
            return "|".join(rf"(?:.*\.)?{fnmatch.translate(pattern)}" for pattern in self.target_modules)
        return list(self.target_modules)

    def peft_modules_to_save(self, model: nn.Module | None) -> list[str]:
        """PEFT's ``modules_to_save`` for TRAINABLE: PEFT trains and saves whole modules."""
        if model is None:
            return list(self.trainable or [])
        module_names = [name for name, _ in model.named_modules() if name]
        chosen: list[str] = []
        for pattern in self.trainable if self.trainable is not None else DEFAULT_TRAINABLE:
            matched = [name for name in module_names if module_matches(name, pattern)]
            if not matched and self.trainable is not None:
                raise ConfigError(
                    f"{self.section}.TRAINABLE '{pattern}' names no module of {type(model).__name__}; "
                    f"PEFT trains whole modules, e.g. classifier (not parameters such as classifier.weight)"
                )
            # a plain name goes as written (PEFT matches it as a suffix); a glob as the names it found
            if matched:
                chosen += matched if _GLOB_CHARS.search(pattern) else [pattern]
        return chosen


def ignore_regex(ignore_layers: Collection[int | str]) -> str:
    """A regex (full match) for the module names ``ignore_layers`` leaves alone, as add_lora_layers does."""
    alternatives = []
    for layer in ignore_layers:
        pattern = str(layer)
        for candidate in (pattern, f"{pattern}.*", f"*.{pattern}", f"*.{pattern}.*"):
            alternatives.append(fnmatch.translate(candidate))
    return "|".join(alternatives)


def _positive_int(value: Any, key: str, errors: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append(f"{key} must be a positive integer, got {value!r}")
        return 8
    return value


def _positive_number(value: Any, key: str, errors: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        errors.append(f"{key} must be a positive number, got {value!r}")
        return 16.0
    return float(value)


def _probability(value: Any, key: str, errors: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        errors.append(f"{key} must be a dropout probability in [0, 1), got {value!r}")
        return 0.0
    return float(value)


def _names(value: Any, key: str, errors: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) and item for item in items):
        errors.append(f"{key} must be a name or a list of names, got {value!r}")
        return ()
    return tuple(items)


def _target_modules(value: Any, key: str, errors: list[str]) -> tuple[str, ...]:
    return _names(value, key, errors) or ()


def _regex(value: Any, key: str, errors: list[str]) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except (TypeError, re.error) as error:
        errors.append(f"{key} is not a regular expression ({error}): {value!r}")
        return None
    return value


def _layers(value: Any, key: str, errors: list[str]) -> tuple[int | str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, (int, str)) else value
    valid = isinstance(items, (list, tuple)) and all(
        (isinstance(item, int) and not isinstance(item, bool) and item >= 0)
        or (isinstance(item, str) and item)
        for item in items
    )
    if not valid:
        errors.append(f"{key} must be layer indices or name patterns, e.g. [0, 1], got {value!r}")
        return ()
    return tuple(items)


_PARSERS = {
    "r": _positive_int,
    "alpha": _positive_number,
    "dropout": _probability,
    "target_modules": _target_modules,
    "target_regex": _regex,
    "ignore_layers": _layers,
    "trainable": _names,
}
