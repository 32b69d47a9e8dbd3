"""What ``trainlab list`` shows, kept between runs so listing need not import torch and transformers.

Building the listing imports every registry's locations (about 4 s on 2 CPU cores, mostly torch and
transformers). The result is saved with a key made of everything it depends on: the Python and torch
versions and the size and modification time of every source file of TrainLab. A later run with the same
key reads the saved listing (well under a second); any change rebuilds it by importing, so what is listed
is always what a lookup finds. With a ``trainlab.plugins`` entry point installed the listing is always
built afresh, since a plugin's own files are not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path

Listing = dict[str, list[tuple[str, str]]]  # registry name -> (registered name, defining module)

CACHE_DIR_ENV = "TRAINLAB_CACHE_DIR"


def cache_dir() -> Path:
    """``$TRAINLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/trainlab``, else ``~/.cache/trainlab``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trainlab"


def listing_key() -> str | None:
    """A digest of everything the built-in listing depends on; None when plugins make it unknowable."""
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from .plugins import PLUGIN_GROUP

    if list(entry_points(group=PLUGIN_GROUP)):
        return None
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = ""
    package = Path(__file__).resolve().parent
    parts = [platform.python_version(), torch_version, str(package)]
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        parts.append(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_listing(names: Iterable[str] | None = None) -> Listing:
    """Names and defining modules of the registries ``names`` (all by default), importing what they declare."""
    from .registries import ALL_REGISTRIES

    return {
        name: [
            (entry, getattr(ALL_REGISTRIES[name].get(entry), "__module__", "?"))
            for entry in ALL_REGISTRIES[name].names()
        ]
        for name in (ALL_REGISTRIES if names is None else names)
    }


def builtin_listing() -> Listing:
    """The saved listing when its key still matches, else a fresh one (saved for next time when possible)."""
    key = listing_key()
    if key is None:
        return build_listing()
    path = cache_dir() / f"registry-listing-{key[:32]}.json"
    try:
        return {
            name: [tuple(row) for row in rows]
            for name, rows in json.loads(path.read_text(encoding="utf-8")).items()
        }
    except (OSError, ValueError, AttributeError):  # missing, unreadable or malformed: rebuild
        pass
    listing = build_listing()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(listing), encoding="utf-8")
        os.replace(partial, path)  # atomic: a concurrent reader never sees half a file
    except OSError:  # a read-only home only costs the next run its speed
        pass
    return listing
