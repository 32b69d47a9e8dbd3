"""Plugins: packages that register components through the ``trainlab.plugins`` entry-point group, imported once
per process on the first registry lookup that needs them."""

from __future__ import annotations

from .errors import RegistryError

PLUGIN_GROUP = "trainlab.plugins"
_plugins_loaded = False


def load_plugins() -> list[str]:
    """Import every module advertised in the `trainlab.plugins` entry-point group (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return []
    from importlib.metadata import entry_points

    loaded = []
    for entry_point in entry_points(group=PLUGIN_GROUP):
        try:
            entry_point.load()
        except Exception as exc:  # a broken plugin fails every lookup the same way, never silently
            raise RegistryError(
                f"plugin '{entry_point.name}' ({entry_point.value}, from the {PLUGIN_GROUP} entry points) "
                f"failed to import: {type(exc).__name__}: {exc} — fix or uninstall that package"
            ) from exc
        loaded.append(entry_point.value)
    _plugins_loaded = True
    return loaded


__all__ = ["PLUGIN_GROUP", "load_plugins"]
