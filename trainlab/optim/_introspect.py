"""Find the public classes a torch module defines, so registries list them without hand-written names."""

from __future__ import annotations

import inspect
from types import ModuleType


def public_classes(module: ModuleType, base: type) -> list[type]:
    """Public classes exposed by ``module`` that subclass ``base``, ``base`` itself excluded."""
    return [
        obj
        for name, obj in vars(module).items()
        if not name.startswith("_") and inspect.isclass(obj) and issubclass(obj, base) and obj is not base
    ]
