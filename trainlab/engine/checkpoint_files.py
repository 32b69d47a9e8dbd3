"""Checkpoints on disk: their layout, whether one is whole or intact, finding the one to resume, and the
durable writes they are made of. ``checkpoint.Checkpointer`` writes and reads them; commands that only look
(eval, launch, the config checks) need nothing else.

Layout of ``RUN_DIR/checkpoints/``::

    step-00000120/            one complete checkpoint (a directory appears only once it is whole)
        ...                   what the strategy writes: for single/ddp model.safetensors (the unwrapped model)
                              and trainer_state.pt (optimizer, scaler + the engine's state: scheduler, counters,
                              per-rank RNG states)
        meta.json             written last: step, epoch, world size, strategy, parameter shapes, metrics, the
                              size (``files``) and sha256 (``sha256``) of every file above; a checkpoint is
                              complete when the sizes match, intact when the checksums do too
    latest                    name of the newest complete checkpoint (replaced atomically)
    best.json                 name, metric and value of the best checkpoint (kept out of rotation)
    damaged-step-00000140/    a checkpoint found damaged when resuming, moved aside so the run writes that step anew
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"
SHARDED_DIR = "sharded"  # torch.distributed.checkpoint files of a sharded strategy
DAMAGED_PREFIX = "damaged-"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Make every file and folder under ``path`` durable, ``path`` itself last."""
    for file in sorted(path.rglob("*")):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    for folder in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        fsync_dir(folder)
    fsync_dir(path)


def file_sizes(path: Path) -> dict[str, int]:
    """Size of every file under ``path`` by its relative path (recorded in meta.json, checked on resume)."""
    return {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file() and f.name != META_FILE}


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_meta(path: Path) -> dict[str, Any] | None:
    """The checkpoint's meta.json, or None when it is missing or unreadable."""
    try:
        return json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def file_checksums(path: Path, names: Iterable[str]) -> dict[str, str]:
    """The sha256 of each named file under ``path`` (~1 GB/s; threads overlap, hashlib releases the GIL)."""
    def digest(name: str) -> str:
        with open(path / name, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    names = list(names)
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(names)))) as pool:
        return dict(zip(names, pool.map(digest, names)))


def checkpoint_problem(path: Path, *, checksums: bool = False) -> str | None:
    """What is wrong with the checkpoint at ``path``, or None when it is whole: its meta.json, a file it lists
    that is missing or has another size, or (``checksums``) content that differs from the recorded sha256."""
    meta = read_meta(path)
    if meta is None:
        return f"no readable {META_FILE}"
    files = meta.get("files")
    if files is None:  # written before sizes were recorded
        missing = [name for name in (MODEL_FILE, STATE_FILE) if not (path / name).is_file()]
        return f"{missing[0]} is missing" if missing else None
    for name, size in files.items():
        if not (path / name).is_file():
            return f"{name} is missing"
        if (actual := (path / name).stat().st_size) != size:
            return f"{name} has {actual} bytes, {META_FILE} recorded {size}"
    recorded = meta.get("sha256") if checksums else None
    if recorded:
        differ = [name for name, value in file_checksums(path, recorded).items() if value != recorded[name]]
        if differ:
            return f"{', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'} from the sha256 in {META_FILE}"
    return None


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds a whole checkpoint: its meta.json and every file it lists, at the recorded size."""
    return checkpoint_problem(path) is None


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The checkpoint named by ``latest`` if whole, else the newest whole one (``latest`` may predate a crash)."""
    pointer = checkpoint_dir / "latest"
    if pointer.is_file():
        candidate = checkpoint_dir / pointer.read_text(encoding="utf-8").strip()
        if is_complete(candidate):
            return candidate
    complete = sorted(p for p in checkpoint_dir.glob("step-*") if is_complete(p))
    return complete[-1] if complete else None


def best_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The complete checkpoint that ``best.json`` names, if any."""
    pointer = checkpoint_dir / "best.json"
    if not pointer.is_file():
        return None
    path = checkpoint_dir / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    return path if is_complete(path) else None


# What safetensors (Rust: "os error N") and torch.save (C++ streams lose the errno) say when a write fails.
_WRITE_FAILED = re.compile(r"os error (\d+)|\[Errno (\d+)\]|iostream error|PytorchStreamWriter failed|unexpected pos")


def storage_failure(exc: BaseException) -> str | None:
    """Why the storage refused a write, when ``exc`` or an exception it chains is such a failure; else None."""
    seen: BaseException | None = exc
    for _ in range(8):  # causes and contexts, never a cycle
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen.strerror or str(seen)
        match = _WRITE_FAILED.search(str(seen))
        if match:
            code = match.group(1) or match.group(2)
            return os.strerror(int(code)) if code else "a file could not be written"
        seen = seen.__cause__ or seen.__context__
    return None


def format_size(n: int) -> str:
    """``n`` bytes in the largest fitting unit: 1.2 GB, 340.0 MB, 12 B."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def find_resume_checkpoint(resume: str, run_dir: str, output_dir: str, project_name: str) -> Path | None:
    """Resolve TRAINER.RESUME: "" → None; a path → that checkpoint; auto → the newest complete one of the run.

    A resume with nothing to resume raises ConfigError naming where it looked.
    """
    if not resume:
        return None
    if resume != "auto":
        path = Path(resume)
        if path.is_dir() and (path / "checkpoints").is_dir():
            path = latest_checkpoint(path / "checkpoints") or path
        elif path.is_dir() and not is_complete(path):
            path = latest_checkpoint(path) or path
        if not is_complete(path):
            raise ConfigError(f"TRAINER.RESUME {resume}: no complete checkpoint there (a checkpoint directory with "
                              f"{META_FILE} and the files it lists, or a run directory holding checkpoints/)")
        return path
    runs = [Path(run_dir)] if run_dir else sorted((Path(output_dir) / project_name).glob("*"), key=lambda p: p.name, reverse=True)
    for run in runs:
        found = latest_checkpoint(run / "checkpoints") if (run / "checkpoints").is_dir() else None
        if found is not None:
            return found
    # Starting afresh instead would silently lose the run the user meant to continue: say where we looked.
    folder = Path(run_dir) if run_dir else Path(output_dir) / project_name
    if not folder.is_dir():
        why = "no such folder"
    elif run_dir:
        why = "no complete checkpoint in its checkpoints/" if (folder / "checkpoints").is_dir() else "it holds no checkpoints/"
    else:
        why = f"none of its {len(runs)} run(s) has a complete checkpoint" if runs else "it holds no runs"
    fix = " and a new RUN_DIR" if run_dir and folder.is_dir() and any(folder.iterdir()) else ""
    raise ConfigError(f"TRAINER.RESUME auto: no checkpoint to resume in {'TRAINER.RUN_DIR ' * bool(run_dir)}{folder} "
                      f"({why}); start a new run without --resume{fix}")
