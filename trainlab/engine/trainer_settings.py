"""How a trainer receives the TRAINER settings: from the config it is being built from (a context variable, so a
trainer written against the prototype's fixed constructor gets them too), and in its constructor's signature.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Callable, Iterator

from ..config.settings import TRAINER_DEFAULTS, TrainerSettings

# The settings of the config a trainer is being built from (see ``building_with``); a trainer written against
# the prototype's fixed constructor cannot receive them as an argument.
_CONFIG_SETTINGS: contextvars.ContextVar[TrainerSettings | None] = contextvars.ContextVar("trainer_settings", default=None)


@contextlib.contextmanager
def building_with(settings: TrainerSettings) -> Iterator[None]:
    """Trainers constructed inside this block start from ``settings`` (their own arguments override them)."""
    token = _CONFIG_SETTINGS.set(settings)
    try:
        yield
    finally:
        _CONFIG_SETTINGS.reset(token)


def settings_being_built() -> TrainerSettings | None:
    """The settings of the ``building_with`` block this code runs in, if any."""
    return _CONFIG_SETTINGS.get()


def signature_with_settings(init: Callable) -> inspect.Signature:
    """``init``'s signature with ``**options`` spelled out as the keyword-only TRAINER settings, so help(), IDEs
    and the config checks see every accepted setting."""
    params = [p for p in inspect.signature(init).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in TRAINER_DEFAULTS.items()]
    return inspect.Signature(params)


__all__ = ["building_with", "settings_being_built", "signature_with_settings"]
