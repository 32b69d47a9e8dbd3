"""Config loading: defaults, YAML with `_BASE_` inheritance, command-line overrides, validation."""

from .defaults import COMPONENT_SECTIONS, DEFAULTS, OPEN_SECTIONS
from .loader import Config, load_config, parse_overrides, resolve_package_path

__all__ = [
    "COMPONENT_SECTIONS",
    "DEFAULTS",
    "OPEN_SECTIONS",
    "Config",
    "load_config",
    "parse_overrides",
    "resolve_package_path",
]
