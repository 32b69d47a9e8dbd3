"""Load a YAML config: `_BASE_` inheritance, defaults, command-line overrides, validation, dump."""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, did_you_mean
from .defaults import DEFAULTS, OPEN_SECTIONS
from .yaml_files import load_yaml, read_yaml

BASE_KEY = "_BASE_"
PKG_PREFIX = "pkg://"


class Config(dict):
    """A nested dict with attribute access (``cfg.TRAINER.EPOCHS``), as yacs configs offered."""

    def __init__(self, data: Mapping[str, Any] | None = None, source: str | None = None) -> None:
        super().__init__()
        for key, value in (data or {}).items():
            self[key] = _wrap(value)
        self.__dict__["source"] = source
        self.__dict__["override_keys"] = frozenset()  # dotted keys set on the command line

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key '{key}'{did_you_mean(key, self.keys())}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = _wrap(value)

    def __deepcopy__(self, memo: dict) -> Config:
        return Config(copy.deepcopy(self.to_dict(), memo), source=self.source)

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict copy (for YAML dumping and pickling across processes)."""
        return {k: v.to_dict() if isinstance(v, Config) else _unwrap(v) for k, v in self.items()}

    def dump(self, path: str | os.PathLike | None = None) -> str:
        """The config as YAML; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping) and not isinstance(value, Config):
        return Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, list):
        return [v.to_dict() if isinstance(v, Config) else _unwrap(v) for v in value]
    return value


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (), *, resolve: bool = True,
                errors: list[str] | None = None) -> Config:
    """Read ``path`` (with its ``_BASE_`` chain) over the defaults, apply ``overrides``, validate.

    ``overrides`` are ``KEY VALUE`` pairs or ``KEY=VALUE`` items, e.g. ``["TRAINER.EPOCHS", "3"]``.
    All problems found are reported together in one :class:`ConfigError` — or appended to ``errors`` when a
    list is given, so a caller that checks more can report everything at once.
    """
    collect = errors
    path = Path(path)
    user = _read_with_bases(path, chain=())
    merged = _deep_merge(copy.deepcopy(DEFAULTS), user)
    errors = _validate(merged, DEFAULTS, prefix="", source=str(path))
    for key, value in parse_overrides(overrides):
        error = _apply_override(merged, key, value)
        if error:
            errors.append(error)
    errors += _settings_errors(merged.get("TRAINER", {}), errors)
    if collect is not None:
        collect.extend(errors)
    elif errors:
        raise ConfigError("\n".join(errors) if len(errors) > 1 else errors[0])
    if resolve:
        merged = _resolve_values(merged)
    config = Config(merged, source=str(path))
    config.__dict__["override_keys"] = frozenset(key for key, _ in parse_overrides(overrides))
    return config


def _settings_errors(trainer: Mapping[str, Any], errors: list[str]) -> list[str]:
    """Choice and range problems of the TRAINER settings whose type was right (wrong types are reported already)."""
    from .settings import TRAINER_DEFAULTS, settings_errors

    reported = {error.split()[0] for error in errors}
    values = {k.lower(): v for k, v in trainer.items() if k.lower() in TRAINER_DEFAULTS and f"TRAINER.{k}" not in reported}
    return settings_errors(values)


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve() if path.exists() else path
    if path in chain:
        cycle = " → ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"_BASE_ files include each other in a cycle: {cycle}")
    data = read_yaml(path)
    _check_structure(data, DEFAULTS, "", path)
    _anchor_custom_imports(data, path.parent)
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list):
        raise ConfigError(f"{BASE_KEY} in {path} must be a file name or a list of them, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = Path(base) if os.path.isabs(base) else path.parent / base
        merged = _deep_merge(merged, _read_with_bases(base_path, (*chain, path)))
    return _deep_merge(merged, data)


def _check_structure(data: dict[str, Any], schema: Mapping[str, Any], prefix: str, path: Path) -> None:
    """Sections must be mappings (and CUSTOM_IMPORTS a list), or nothing else can be read; an empty section means
    its defaults. Other types are checked later, all together."""
    for key, value in list(data.items()):
        default = schema.get(key) if isinstance(schema, Mapping) else None
        if not isinstance(default, (dict, list)):
            continue
        if value is None and isinstance(default, dict):
            del data[key]
        elif isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(f"{prefix}{key} in {path} must be a section of KEY: value lines, got {value!r}")
        elif key == "CUSTOM_IMPORTS" and not isinstance(value, list):  # read while loading; other lists later
            raise ConfigError(f"{prefix}{key} in {path} must be a list, e.g. [{value!r}], got {value!r}")
        elif isinstance(value, dict):
            _check_structure(value, default, f"{prefix}{key}.", path)


def _anchor_custom_imports(data: dict[str, Any], folder: Path) -> None:
    """Make CUSTOM_IMPORTS files absolute, relative to the file listing them.

    They then still resolve when listed by a `_BASE_` file in another folder, and from the resolved config
    written into a run directory. Paths that do not exist there are left to the runner (it also tries the cwd).
    """
    imports = data.get("CUSTOM_IMPORTS")
    if not isinstance(imports, list):
        return
    data["CUSTOM_IMPORTS"] = [
        str((folder / entry).resolve())
        if isinstance(entry, str) and (entry.endswith(".py") or "/" in entry) and (folder / entry).is_file()
        else entry
        for entry in imports
    ]


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return base


def _validate(config: dict[str, Any], schema: Mapping[str, Any], prefix: str, source: str) -> list[str]:
    errors = []
    section = prefix.rstrip(".")
    for key, value in config.items():
        full = f"{prefix}{key}"
        if key not in schema:
            if section not in OPEN_SECTIONS:
                errors.append(f"Unknown key {full} in {source}{_suggest(key, schema, prefix)}")
            continue
        errors += _check_type(full, value, schema[key], source)
        if isinstance(value, dict) and isinstance(schema[key], dict):
            errors += _validate(value, schema[key], f"{full}.", source)
    return errors


def _suggest(key: str, schema: Any, prefix: str) -> str:
    candidates = list(schema.keys()) if isinstance(schema, Mapping) else []
    hint = did_you_mean(key, candidates)
    return hint.replace("'", "").replace("mean ", f"mean {prefix}") if hint else ""


def _check_type(key: str, value: Any, default: Any, source: str) -> list[str]:
    if default is None or value is None and not isinstance(default, (dict, list)):
        return []
    expected: tuple[type, ...]
    if isinstance(default, bool):
        expected = (bool,)
    elif isinstance(default, float):
        expected = (int, float)
    elif isinstance(default, int):
        expected = (int,)
    elif isinstance(default, dict):
        expected = (dict,)
    elif isinstance(default, list):
        expected = (list,)
    else:
        expected = (type(default),)
    if isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected):
        return []
    names = " or ".join(t.__name__ for t in expected)
    return [f"{key} in {source} must be {names}, got {type(value).__name__} {value!r}"]


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """Turn ``["A.B", "3", "C.D=x"]`` into ``[("A.B", 3), ("C.D", "x")]``; values are YAML scalars."""
    pairs = []
    items = list(items)
    i = 0
    while i < len(items):
        item = items[i]
        if "=" in item and not item.startswith("="):
            key, raw = item.split("=", 1)
            i += 1
        elif i + 1 < len(items):
            key, raw = item, items[i + 1]
            i += 2
        else:
            raise ConfigError(
                f"override '{item}' has no value — write KEY VALUE (TRAINER.EPOCHS 3) or KEY=VALUE"
            )
        try:
            value = load_yaml(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key.strip(), value))
    return pairs


def _apply_override(config: dict[str, Any], dotted: str, value: Any) -> str | None:
    parts = dotted.split(".")
    node: dict[str, Any] = config
    schema: Any = DEFAULTS
    for depth, part in enumerate(parts):
        section = ".".join(parts[:depth])
        is_last = depth == len(parts) - 1
        in_schema = isinstance(schema, Mapping) and part in schema
        if not in_schema and section not in OPEN_SECTIONS and not _under_open(section):
            hint = _suggest(part, schema, f"{section}." if section else "")
            return f"Unknown key {dotted} in the command-line overrides{hint}"
        if is_last:
            if in_schema:
                problems = _check_type(dotted, value, schema[part], "the command-line overrides")
                if problems:
                    return problems[0]
            node[part] = value
            return None
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
        schema = schema.get(part, {}) if isinstance(schema, Mapping) else {}
    return None


def _under_open(section: str) -> bool:
    return any(section.startswith(open_section + ".") for open_section in OPEN_SECTIONS)


def _resolve_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_values(v) for v in value]
    if isinstance(value, str) and value.startswith(PKG_PREFIX):
        return resolve_package_path(value)
    return value


def resolve_package_path(value: str) -> str:
    """``pkg://package/sub/dir`` → the absolute path of ``sub/dir`` inside the installed ``package``."""
    package, _, rest = value[len(PKG_PREFIX) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"{value}: Python package '{package}' is not installed — pip install it, or use a directory path"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / rest)
