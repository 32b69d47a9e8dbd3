"""Choose which parameters train: freeze, unfreeze and mark by name pattern, and count them.

One pattern language is used everywhere (FREEZE, LORA.TRAINABLE, LORA.IGNORE_LAYERS): a pattern is a
shell-style glob (``*``, ``?``, ``[...]``) matched against dotted names as a whole (``bert.embeddings.*``),
as a leading part (``bert.embeddings``) or as trailing or inner components (``classifier``, ``query``).
Module selectors (LORA.TARGET_MODULES) match a module's name as a whole or its trailing components only,
which is also how Hugging Face PEFT reads ``target_modules``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from torch import nn

from trainlab.errors import ConfigError

LORA_PARAMETER_NAMES = ("lora_A", "lora_B")
# the prototype's freeze_model kept every parameter whose name contains one of these trainable
PROTOTYPE_TRAINABLE_WORDS = ("lora", "classifier")


def name_matches(name: str, pattern: str) -> bool:
    """Whether the dotted ``name`` matches ``pattern`` whole, as a prefix, or as trailing/inner components."""
    return any(
        fnmatchcase(name, candidate)
        for candidate in (pattern, f"{pattern}.*", f"*.{pattern}", f"*.{pattern}.*")
    )


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(name_matches(name, pattern) for pattern in patterns)


def module_matches(name: str, pattern: str) -> bool:
    """Whether the module ``name`` is ``pattern`` or ends in it (``query`` matches ``...self.query``)."""
    return fnmatchcase(name, pattern) or fnmatchcase(name, f"*.{pattern}")


def is_lora_parameter(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in LORA_PARAMETER_NAMES


def freeze_model(model: nn.Module) -> nn.Module:
    """Freeze every parameter except those whose name contains "lora" or "classifier" (prototype meaning).

    The prototype's LoRA trainer relies on the classification head training next to the adapters.
    """
    for name, param in model.named_parameters():
        param.requires_grad_(any(word in name for word in PROTOTYPE_TRAINABLE_WORDS))
    return model


def freeze_all_but_lora(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the ``lora_A`` / ``lora_B`` weights of TrainLab's LoRA layers."""
    for name, param in model.named_parameters():
        param.requires_grad_(is_lora_parameter(name))
    return model


def unfreeze_model(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again."""
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def set_requires_grad(model: nn.Module, patterns: Iterable[str], requires_grad: bool, key: str) -> list[str]:
    """Set ``requires_grad`` on the parameters matching ``patterns``; return their names.

    A pattern that matches nothing is a typo in the config (``key`` names it) and raises ConfigError.
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if not any(name_matches(name, pattern) for name in names):
            raise ConfigError(
                f"{key} pattern '{pattern}' matches no parameter of {type(model).__name__}. "
                f"Parameter names look like: {', '.join(_examples(names))}"
            )
    chosen = []
    for name, param in model.named_parameters():
        if matches_any(name, patterns):
            param.requires_grad_(requires_grad)
            chosen.append(name)
    return chosen


def freeze_parameters(model: nn.Module, patterns: Iterable[str], key: str = "MODEL.FREEZE") -> list[str]:
    """Freeze the parameters whose names match ``patterns`` (e.g. ``["bert.embeddings.*"]``)."""
    return set_requires_grad(model, patterns, False, key)


def mark_trainable(model: nn.Module, patterns: Iterable[str], key: str = "MODEL.LORA.TRAINABLE") -> list[str]:
    """Make the parameters matching ``patterns`` trainable, e.g. a classification head after freeze_model."""
    return set_requires_grad(model, patterns, True, key)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return ``(trainable, total)`` parameter counts."""
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def describe_trainable(model: nn.Module) -> str:
    """One log line: trainable and total parameter counts and their ratio."""
    trainable, total = count_parameters(model)
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)"


def _examples(names: list[str], limit: int = 6) -> list[str]:
    step = max(len(names) // limit, 1)
    return names[::step][:limit]
