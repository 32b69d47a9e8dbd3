"""A flat name → class registry that imports the modules it needs on the first lookup that misses."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import RegistryError, did_you_mean
from .plugins import load_plugins

logger = logging.getLogger(__name__)


class Registry:
    """Maps names to classes or functions so a config can name them.

    Args:
        name: what the registry holds, e.g. ``"model"``; used in messages.
        parent: a registry to fall back to when a name is missing here.
        scope: a label a child is reached by from its parent (``"scope.Name"``); defaults to ``name``.
        locations: modules imported the first time a lookup misses, so built-in
            components register themselves without any manual import.
    """

    def __init__(
        self,
        name: str,
        parent: Registry | None = None,
        scope: str | None = None,
        locations: list[str] | tuple[str, ...] = (),
    ) -> None:
        self._name = name
        self._scope = scope or name
        self._parent = parent
        self._locations = list(locations)
        self._locations_imported = False
        self._module_dict: dict[str, Any] = {}
        self._builtin_names: set[str] = set()  # names whose current entry TrainLab itself registered
        self._children: dict[str, Registry] = {}
        if parent is not None:
            parent._children[self._scope] = self

    @property
    def name(self) -> str:
        return self._name

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def parent(self) -> Registry | None:
        return self._parent

    @property
    def children(self) -> dict[str, Registry]:
        return dict(self._children)

    @property
    def locations(self) -> list[str]:
        return list(self._locations)

    @property
    def module_dict(self) -> dict[str, Any]:
        return self._module_dict

    def register_module(
        self,
        name: str | list[str] | tuple[str, ...] | None = None,
        force: bool = False,
        module: Any = None,
    ) -> Any:
        """Register ``module`` under ``name`` (or its ``__name__``); use as a call or a decorator.

        ``name`` may be a list of aliases. A taken name raises unless ``force=True``, with one exception:
        between a user's class and a built-in one (registered by TrainLab's own modules) of the same
        name, the user's wins, whichever registers first.
        """
        if name is not None and not isinstance(name, (str, list, tuple)):
            raise TypeError(f"name must be a str or a list of str, got {type(name).__name__}")
        # Who registers, not where the class is defined: trainlab.optim registers torch's own classes.
        builtin = _is_builtin_module(sys._getframe(1).f_globals.get("__name__", ""))
        if module is not None:
            self._register(module, name, force, builtin)
            return module

        def decorator(obj: Any) -> Any:
            self._register(obj, name, force, builtin)
            return obj

        return decorator

    def _register(
        self, module: Any, name: str | list[str] | tuple[str, ...] | None, force: bool, builtin: bool = False
    ) -> None:
        if not callable(module):
            raise TypeError(f"only classes and functions can be registered, got {module!r}")
        names = [module.__name__] if name is None else [name] if isinstance(name, str) else list(name)
        for key in names:
            existing = self._module_dict.get(key)
            if existing is not None and existing is not module and not force:
                existing_builtin = key in self._builtin_names
                if builtin and not existing_builtin:
                    # Built-ins load lazily, often after the user's modules: the user's class keeps the name.
                    logger.debug("%s: built-in %s yields '%s' to %s", self._name, _origin(module), key, _origin(existing))
                    continue
                if builtin == existing_builtin:
                    raise KeyError(
                        f"'{key}' is already registered in {self._name} by {_origin(existing)}; "
                        f"pass force=True to replace it or choose another name"
                    )
                logger.debug("%s: %s replaces built-in %s as '%s'", self._name, _origin(module), _origin(existing), key)
            self._module_dict[key] = module
            if builtin:
                self._builtin_names.add(key)
            else:
                self._builtin_names.discard(key)

    def import_locations(self) -> None:
        """Import the modules this registry declares (once), so their components register."""
        if self._locations_imported:
            return
        for location in self._locations:
            importlib.import_module(location)
        # Marked only after success: a failed import must fail again on the next lookup, not turn into
        # a misleading "unknown name".
        self._locations_imported = True

    def get(self, key: str | Any) -> Any:
        """Return the object registered as ``key``, importing declared locations and plugins on a miss.

        ``key`` may be ``"scope.Name"`` to reach a child or parent registry; a class or
        function is returned as is. Unknown names raise :class:`RegistryError`.
        """
        found = self._find(key) if isinstance(key, str) else key
        if found is None:
            raise RegistryError(self._unknown_message(key))
        return found

    def _find(self, key: str) -> Any:
        scope, _, short = key.rpartition(".")
        if scope and scope != self._scope:
            target = self._children.get(scope) or self._ancestor_with_scope(scope)
            return target._find(short) if target is not None else None
        key = short
        if key not in self._module_dict:
            self.import_locations()
        if key not in self._module_dict:
            load_plugins()
        if key in self._module_dict:
            return self._module_dict[key]
        return self._parent._find(key) if self._parent is not None else None

    def _ancestor_with_scope(self, scope: str) -> Registry | None:
        node = self._parent
        while node is not None and node._scope != scope:
            node = node._parent
        return node

    def _unknown_message(self, key: str) -> str:
        known = self.names()
        hint = did_you_mean(key, known)
        listing = ", ".join(known[:30]) + (f", … ({len(known)} in all)" if len(known) > 30 else "")
        return (
            f"'{key}' is not in the {self._name} registry{hint or '.'} "
            f"Known names: {listing or '(none)'}. "
            f"Run `trainlab list {self._name}` to see them, or add the module that registers it "
            f"to CUSTOM_IMPORTS / --import."
        )

    def exists(self, name: str) -> bool:
        """Whether ``name`` can be found (declared locations and plugins included)."""
        return self._find(name) is not None

    def build(self, cfg: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Build ``cfg['NAME']`` with the other keys (lower-cased) and ``kwargs`` as keyword arguments."""
        return build_from_cfg(cfg, self, *args, **kwargs)

    def names(self) -> list[str]:
        """All registered names, after importing declared locations and plugins."""
        self.import_locations()
        load_plugins()
        return sorted(self._module_dict)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.exists(name)

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        rows = [(name, _origin(obj)) for name, obj in sorted(self._module_dict.items())]
        width = max([len("name")] + [len(name) for name, _ in rows])
        lines = [f"Registry '{self._name}' (scope '{self._scope}', {len(rows)} names)"]
        lines.append(f"  {'name'.ljust(width)}  defined in")
        lines += [f"  {name.ljust(width)}  {origin}" for name, origin in rows]
        return "\n".join(lines)


def _is_builtin_module(module_name: str) -> bool:
    return module_name == "trainlab" or module_name.startswith("trainlab.")


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def accepted_keywords(target: Callable[..., Any]) -> tuple[set[str], bool]:
    """Keyword names ``target`` accepts and whether it also takes any other keyword.

    For a class whose ``__init__`` has ``**kwargs``, the parents' ``__init__`` parameters are followed,
    since subclasses conventionally pass ``**kwargs`` up; ``**kwargs`` that would reach ``object`` or a
    framework base class (``torch.nn.Module``) are the class's own open-ended options.
    """
    if not inspect.isclass(target):
        return _keyword_params(target)
    names: set[str] = set()
    inits = [k for k in target.__mro__ if "__init__" in k.__dict__]
    for klass, parent in zip(inits, inits[1:] + [object]):
        if klass is object:
            break
        params, var_kw = _keyword_params(klass.__dict__["__init__"])
        names |= params
        if not var_kw:
            return names, False
        if parent is object or parent.__module__.startswith("torch."):
            return names, True
    return names, False


def _keyword_params(func: Callable[..., Any]) -> tuple[set[str], bool]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature accept what they accept
        return set(), True
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = {p.name for p in signature.parameters.values() if p.kind in kinds} - {"self"}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return params, var_kw


NAME_KEYS = ("NAME", "name", "type")


def build_from_cfg(cfg: Mapping[str, Any], registry: Registry, *args: Any, **kwargs: Any) -> Any:
    """The prototype's name for :func:`build`: ``NAME`` picks the class, the other keys are keywords."""
    return build(cfg, registry, *args, **kwargs)


def match_keywords(target: Any, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``options`` with every key spelled as ``target`` names it, whatever its case in the config
    (``LR`` → ``lr``, ``T_MAX`` → ``T_max``); keys ``target`` does not take raise one RegistryError naming them."""
    accepted, open_ended = accepted_keywords(target)
    by_lower = {name.lower(): name for name in accepted}
    matched: dict[str, Any] = {}
    unknown = []
    for key, value in options.items():
        name = by_lower.get(str(key).lower())
        if name is not None:
            matched[name] = value
        elif open_ended:
            matched[str(key).lower()] = value
        else:
            unknown.append(str(key))
    if unknown:
        problems = [f"'{key}'{did_you_mean(key, accepted)}" for key in unknown]
        raise RegistryError(
            f"{getattr(target, '__name__', target)} does not take {', '.join(problems)} (from {where}). "
            f"It accepts: {', '.join(sorted(accepted)) or '(nothing)'}."
        )
    return matched


def build(spec: Mapping[str, Any], registry: Registry, *args: Any, where: str | None = None, **runtime: Any) -> Any:
    """The one way a config becomes an object: ``NAME`` picks the class from ``registry``, the other keys (any
    case) are its keyword arguments, and runtime objects (model, tokenizer, optimizer...) are passed where the
    class accepts them. Wrong names and keywords raise one RegistryError naming them and ``where``."""
    if not isinstance(spec, Mapping):
        raise RegistryError(f"a {registry.name} config must be a mapping with a NAME key, got {spec!r}")
    name_key = next((k for k in NAME_KEYS if k in spec), None)
    if name_key is None or spec[name_key] in (None, ""):
        raise RegistryError(f"the {registry.name} config has no NAME; set NAME to one of: {', '.join(registry.names())}")
    target = registry.get(spec[name_key])
    where = where or f"the {registry.name} config of '{spec[name_key]}'"
    options = match_keywords(target, {str(k).lower(): v for k, v in spec.items() if k != name_key}, where)
    accepted, open_ended = accepted_keywords(target)
    options.update({key: value for key, value in runtime.items() if open_ended or key in accepted})
    return target(*args, **options)
