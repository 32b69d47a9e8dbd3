"""Checkpoints that never lose work: atomic directories, a `latest` pointer, best and keep-last rotation, exact resume.

Layout of ``RUN_DIR/checkpoints/``::

    step-00000120/            one complete checkpoint (a directory appears only once it is whole)
        ...                   what the strategy writes: for single/ddp model.safetensors (the unwrapped model)
                              and trainer_state.pt (optimizer, scaler + the engine's state: scheduler, counters,
                              per-rank RNG states)
        meta.json             written last: step, epoch, world size, strategy, parameter shapes, metrics and the
                              size of every file above (a checkpoint is complete when they all match)
    latest                    name of the newest complete checkpoint (replaced atomically)
    best.json                 name, metric and value of the best checkpoint (kept out of rotation)
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError
from . import distributed

if TYPE_CHECKING:
    from .strategies import Strategy

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"
SHARDED_DIR = "sharded"  # torch.distributed.checkpoint files of a sharded strategy


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for file in sorted(path.rglob("*")):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    for folder in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        _fsync_dir(folder)
    _fsync_dir(path)


def file_sizes(path: Path) -> dict[str, int]:
    """Size of every file under ``path`` by its relative path (recorded in meta.json, checked on resume)."""
    return {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file() and f.name != META_FILE}


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds a whole checkpoint: its meta.json and every file it lists, at the recorded size."""
    meta = read_meta(path)
    if meta is None:
        return False
    files = meta.get("files")
    if files is None:  # written before sizes were recorded
        return all((path / name).is_file() for name in (MODEL_FILE, STATE_FILE))
    return all((path / name).is_file() and (path / name).stat().st_size == size for name, size in files.items())


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


def find_resume_checkpoint(resume: str, run_dir: str, output_dir: str, project_name: str) -> Path | None:
    """Resolve TRAINER.RESUME: "" → None; a path → that checkpoint; auto → the newest complete one of the run."""
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
    return None


class Checkpointer:
    """Atomic checkpoint directories of one run, the ``latest`` pointer, the best checkpoint and rotation.

    What goes into a checkpoint is the strategy's business (model, optimizer) plus the ``state`` the loop
    hands over (counters, scheduler, RNG); the checkpointer only makes the directory appear whole or not at all.
    Every rank calls ``save``; rank 0 creates, seals and renames the directory.
    """

    def __init__(self, strategy: Strategy, directory: Path, keep_last: int = 2) -> None:
        self.strategy = strategy
        self.directory = Path(directory)
        self.keep_last = max(1, keep_last)
        self.best_value: float | None = None
        self.judged_step = -1  # the step whose evaluation was last compared with the best
        self.bad_evaluations = 0

    def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Write a complete checkpoint of ``step``; returns its directory (the existing one if ``step`` is saved)."""
        name = f"step-{step:08d}"
        final = self.directory / name
        if distributed.broadcast_object(is_complete(final) if distributed.is_main_process() else None):
            return final  # this step is already saved whole: never rewrite a checkpoint in place
        tmp = self.directory / f".tmp-{name}"
        if distributed.is_main_process():
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        distributed.barrier()
        self.strategy.save_checkpoint(tmp, {**state, "best_value": self.best_value, "bad_evaluations": self.bad_evaluations})
        distributed.barrier()
        if distributed.is_main_process():
            meta = {**meta, "step": step, "parameter_shapes": self.strategy.parameter_shapes(), "files": file_sizes(tmp)}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            _fsync_tree(tmp)
            if final.exists():  # an incomplete leftover of a crash at this step
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.directory)
            write_text_atomic(self.directory / "latest", name)
            self._rotate()
        distributed.barrier()
        return final

    def load(self, path: Path, world_size: int) -> dict[str, Any]:
        """Restore the strategy's state from ``path``; returns the loop's state saved with it."""
        meta = read_meta(path) or {}
        self._check_compatible(path, meta, world_size)
        state = self.strategy.load_checkpoint(path)
        self.best_value, self.bad_evaluations = state.pop("best_value", None), state.pop("bad_evaluations", 0)
        return state

    def _check_compatible(self, path: Path, meta: Mapping[str, Any], world_size: int) -> None:
        problems = []
        current = self.strategy.parameter_shapes()
        saved = meta.get("parameter_shapes", current)
        missing, extra = sorted(set(saved) - set(current)), sorted(set(current) - set(saved))
        changed = [f"{k}: {saved[k]} → {current[k]}" for k in sorted(set(saved) & set(current)) if saved[k] != current[k]]
        if missing or extra or changed:
            details = (changed[:3] + [f"missing in this model: {', '.join(missing[:3])}"] * bool(missing)
                       + [f"new in this model: {', '.join(extra[:3])}"] * bool(extra))
            problems.append("the model differs from the checkpoint's: " + "; ".join(details))
        if problems:
            raise ConfigError(f"cannot resume from {path}: " + " | ".join(problems) + ". Start a new run (TRAINER.RESUME '') or restore the old config.")

    def fits(self, path: Path) -> bool:
        """Whether the model in this process has the parameters (names and shapes) saved at ``path``."""
        saved = (read_meta(path) or {}).get("parameter_shapes")
        return saved is None or saved == self.strategy.parameter_shapes()

    def load_weights(self, path: str) -> tuple[Path, list[str], list[str]]:
        """LOAD_FROM: the model weights (only) of a checkpoint directory or .safetensors file."""
        target = Path(path)
        file = target / MODEL_FILE if target.is_dir() else target
        if not file.is_file():
            raise ConfigError(f"TRAINER.LOAD_FROM {path}: no {MODEL_FILE} found there")
        missing, unexpected = self.strategy.load_weights(file, strict=False)
        return file, missing, unexpected

    def judge(self, value: float, mode: str, step: int) -> bool:
        """Compare an evaluation with the best so far (once per step); an improvement becomes the new best.

        Counts evaluations without improvement for early stopping. A second call at the same step returns
        False and counts nothing.
        """
        if self.judged_step == step:
            return False
        self.judged_step = step
        if self.best_value is not None and not (value < self.best_value if mode == "min" else value > self.best_value):
            self.bad_evaluations += 1
            return False
        self.best_value, self.bad_evaluations = float(value), 0
        return True

    def mark_best(self, path: Path, monitor: str, value: float) -> None:
        """Record ``path`` as the best checkpoint (kept out of rotation)."""
        if distributed.is_main_process():
            write_text_atomic(self.directory / "best.json", json.dumps({"checkpoint": path.name, "monitor": monitor, "value": value}))
        distributed.barrier()

    def best_checkpoint(self) -> Path | None:
        return best_checkpoint(self.directory)

    def _rotate(self) -> None:
        best = self.best_checkpoint()
        complete = sorted(p for p in self.directory.glob("step-*") if is_complete(p))
        for old in complete[: -self.keep_last]:
            if best is None or old.name != best.name:
                shutil.rmtree(old, ignore_errors=True)
        for leftover in self.directory.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
