"""Reading YAML config files: safe loading, ``1e-4`` as a float, a key written twice refused (PyYAML would keep
the last silently), and one-line errors naming the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-4`` as a float, as YAML 1.2 does; PyYAML (YAML 1.1) makes it a string."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping that names the same key twice; PyYAML would silently keep only the last one."""


def _construct_unique_mapping(loader: _YamlLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    written = [key for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"]  # overriding `<<:` is fine
    seen: dict[Any, yaml.Node] = {}
    for key_node in written:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key; the base constructor reports it
            continue
        if first is not key_node:
            raise DuplicateKeyError(
                problem=f"key {key} appears twice (first at line {first.start_mark.line + 1}) — "
                "merge the two blocks into one; otherwise the first is silently dropped",
                problem_mark=key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_YamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_yaml(text: str) -> Any:
    """``text`` parsed as safe YAML with floats as YAML 1.2 reads them and duplicate keys refused."""
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass: no arbitrary objects


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping of sections in the YAML file ``path``; ConfigError naming the file (and line) otherwise."""
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path} — check the path (relative paths start at {Path.cwd()})"
        )
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, DuplicateKeyError):
            raise ConfigError(f"{path}, line {mark.line + 1}: {exc.problem}") from None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path} is empty — it needs at least a MODEL, DATASET and TRAINER section")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (MODEL, TRAINER, DATASET), not {type(data).__name__}"
        )
    return data


__all__ = ["DuplicateKeyError", "load_yaml", "read_yaml"]
