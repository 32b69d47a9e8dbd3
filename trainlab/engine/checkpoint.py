"""Checkpoints that never lose work: atomic directories, a `latest` pointer, best and keep-last rotation, exact resume.

``Checkpointer`` writes a step's checkpoint through the strategy into a temporary directory, seals it with its
meta.json (sizes and sha256 of every file) and renames it into place; the layout and the integrity checks are
in ``checkpoint_files``. Listings check sizes (cheap); resuming checks checksums too and falls back to the
newest intact checkpoint. A save that cannot write (disk full, quota, read-only) removes its temporary
directory and leaves ``latest`` and the checkpoints before it untouched.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError, TrainLabError
from . import distributed
from .checkpoint_files import (
    DAMAGED_PREFIX,
    META_FILE,
    MODEL_FILE,
    best_checkpoint,
    checkpoint_problem,
    file_checksums,
    file_sizes,
    format_size,
    fsync_dir,
    fsync_tree,
    is_complete,
    latest_checkpoint,
    read_meta,
    storage_failure,
    write_text_atomic,
)
from .logging import get_logger

if TYPE_CHECKING:
    from .strategies import Strategy

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


def _first_failure(failure: str | None) -> str | None:
    """The first rank's failure (every rank calls it: it is also the save's barrier)."""
    return next((f for f in distributed.all_gather_objects(failure) if f), None)


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
        self._verified: Path | None = None  # the checkpoint ``intact`` last chose

    def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Write a complete checkpoint of ``step``; returns its directory (the existing one if ``step`` is saved).

        When the storage refuses the files (disk full, quota, file-size limit, read-only), every rank raises the
        same one-line TrainLabError; the temporary directory is removed, and ``latest`` and the checkpoints
        before stay as they were.
        """
        name = f"step-{step:08d}"
        final = self.directory / name
        main = distributed.is_main_process()
        if distributed.broadcast_object(is_complete(final) if main else None):
            return final  # this step is already saved whole: never rewrite a checkpoint in place
        tmp = self.directory / f".tmp-{name}"
        state = {**state, "best_value": self.best_value, "bad_evaluations": self.bad_evaluations}
        # Three stages, each followed by every rank learning whether any rank's storage failed in it.
        failure = _first_failure(self._attempt(tmp, lambda: self._open(tmp)) if main else None)
        if failure is None:
            failure = _first_failure(self._attempt(tmp, lambda: self.strategy.save_checkpoint(tmp, state)))
        if failure is None:
            failure = _first_failure(self._attempt(tmp, lambda: self._seal(tmp, final, step, meta)) if main else None)
        if failure is not None:
            raise TrainLabError(distributed.broadcast_object(self._discard(tmp, name, failure) if main else None))
        return final

    def _open(self, tmp: Path) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a crash while saving this step
        tmp.mkdir()

    def _seal(self, tmp: Path, final: Path, step: int, meta: dict[str, Any]) -> None:
        """Record sizes and checksums, then give the directory its name and point ``latest`` at it."""
        sizes = file_sizes(tmp)
        meta = {**meta, "step": step, "parameter_shapes": self.strategy.parameter_shapes(), "files": sizes,
                "sha256": file_checksums(tmp, sizes)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        fsync_tree(tmp)
        if final.exists():  # an incomplete leftover of a crash at this step
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(self.directory)
        write_text_atomic(self.directory / "latest", final.name)
        self._rotate()

    def _attempt(self, tmp: Path, action: Callable[[], None]) -> str | None:
        """Run one stage of a save; returns why the storage refused it, or None. Any other error (or an
        interruption) removes the temporary directory and propagates."""
        try:
            action()
        except Exception as exc:
            reason = storage_failure(exc)
            if reason is not None:
                return reason
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return None

    def _discard(self, tmp: Path, name: str, reason: str) -> str:
        """Remove the half-written ``tmp`` and say what failed, how much was being written and what to do."""
        written = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) if tmp.is_dir() else 0
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(self.directory) if self.directory.is_dir() else None
        expected = sum(((read_meta(previous) or {}).get("files") or {}).values()) if previous is not None else 0
        amount = f"a checkpoint of about {format_size(expected)}" if expected else f"{format_size(written)} so far"
        try:
            free = f", {format_size(shutil.disk_usage(self.directory).free)} free there"
        except OSError:
            free = ""
        kept = f"{previous.name} is intact and still latest" if previous is not None else "no earlier checkpoint exists"
        return (f"cannot save checkpoint {name} in {self.directory}: {reason} while writing {amount}{free} — free "
                f"space or choose TRAINER.OUTPUT_DIR elsewhere ({kept})")

    def load(self, path: Path, world_size: int) -> dict[str, Any]:
        """Restore the strategy's state from ``path``, or from the checkpoint ``intact`` chooses instead of a
        damaged one; returns the loop's state saved with it."""
        path = self.intact(path)
        meta = read_meta(path) or {}
        self._check_compatible(path, meta, world_size)
        state = self.strategy.load_checkpoint(path)
        self.best_value, self.bad_evaluations = state.pop("best_value", None), state.pop("bad_evaluations", 0)
        return state

    def intact(self, path: Path) -> Path:
        """The checkpoint to resume for ``path``: itself when its files match meta.json (sizes and sha256), else
        the newest intact one before it, with one warning naming both. Call it on every rank: rank 0 checks.

        A damaged ``latest`` that ``latest_checkpoint`` already passed over (by size) is named in the warning
        too. Damaged checkpoints newer than the one used move aside (``damaged-step-*``), so the run writes those
        steps anew. Raises ConfigError when no checkpoint of the directory is intact.
        """
        path = Path(path)
        if path == self._verified:
            return path
        chosen, message = distributed.broadcast_object(self._choose(path) if distributed.is_main_process() else None)
        if chosen is None:
            raise ConfigError(message)
        if message and distributed.is_main_process():
            get_logger().warning(message)
        self._verified = Path(chosen)
        return self._verified

    def _choose(self, path: Path) -> tuple[str | None, str | None]:
        """Rank 0's half of ``intact``: (the checkpoint to use or None, the warning or error to give)."""
        folder = path.parent
        damaged: dict[Path, str] = {}
        pointer = folder / "latest"
        latest = folder / pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None
        if latest is not None and latest.name > path.name and latest.is_dir() and (why := checkpoint_problem(latest)):
            damaged[latest] = why  # asked for by `latest`, passed over by latest_checkpoint for its sizes
        older = sorted((p for p in folder.glob("step-*") if p.name < path.name), key=lambda p: p.name, reverse=True)
        for candidate in [path, *older]:
            why = checkpoint_problem(candidate, checksums=True)
            if why is None:
                break
            damaged[candidate] = why
        else:
            found = "; ".join(f"{p.name}: {why}" for p, why in damaged.items())
            return None, (f"no intact checkpoint to resume in {folder} ({found}) — start a new run "
                          f"(TRAINER.RESUME '') or restore the checkpoint files")
        if not damaged:
            return str(candidate), None
        moved = True
        for damage in damaged:
            target, copies = folder / f"{DAMAGED_PREFIX}{damage.name}", 1
            while target.exists():  # the same step was damaged before: keep both for inspection
                copies += 1
                target = folder / f"{DAMAGED_PREFIX}{damage.name}-{copies}"
            try:
                damage.rename(target)
            except OSError:
                moved = False
        (first, why), *others = damaged.items()
        also = f"; so {'is' if len(others) == 1 else 'are'} {', '.join(p.name for p, _ in others)}" if others else ""
        aside = f", the damaged one(s) moved to {DAMAGED_PREFIX}*" if moved else ""
        return str(candidate), (f"checkpoint {first} is damaged ({why}){also}: resuming from {candidate.name}, "
                                f"the newest intact checkpoint before it{aside}")

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
        try:
            missing, unexpected = self.strategy.load_weights(file, strict=False)
        except Exception as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ConfigError(f"TRAINER.LOAD_FROM {file} cannot be loaded ({type(exc).__name__}: {detail}) — "
                              f"point it at an intact .safetensors file of this model") from exc
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
