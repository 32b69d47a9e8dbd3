"""Checkpoints that never lose work: atomic directories, a `latest` pointer, best and keep-last rotation, exact resume.

Layout of ``RUN_DIR/checkpoints/``::

    step-00000120/            one complete checkpoint (a directory appears only once it is whole)
        model.safetensors     the unwrapped model's weights
        trainer_state.pt      optimizer, scheduler, grad scaler, counters, per-rank RNG states (tensors only)
        meta.json             step, epoch, world size, parameter shapes, metrics
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
from safetensors.torch import load_model, save_model

from ..errors import ConfigError
from . import distributed

if TYPE_CHECKING:
    from .base_trainer import BaseTrainer

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"


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
    for file in path.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(path)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in (MODEL_FILE, STATE_FILE, META_FILE))


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
            raise ConfigError(f"TRAINER.RESUME {resume}: no complete checkpoint there (needs {MODEL_FILE}, {STATE_FILE}, {META_FILE})")
        return path
    runs = [Path(run_dir)] if run_dir else sorted((Path(output_dir) / project_name).glob("*"), key=lambda p: p.name, reverse=True)
    for run in runs:
        found = latest_checkpoint(run / "checkpoints") if (run / "checkpoints").is_dir() else None
        if found is not None:
            return found
    return None


def parameter_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in model.state_dict().items()}


class Checkpointer:
    """Saves and restores a trainer's complete state; only rank 0 writes, every rank waits for it."""

    def __init__(self, trainer: BaseTrainer) -> None:
        self.trainer = trainer
        self.directory = Path(trainer.run_dir) / "checkpoints"
        self.best_value: float | None = None
        self.judged_step = -1  # the step whose evaluation was last compared with the best
        self.bad_evaluations = 0

    def save(self, metrics: Mapping[str, float] | None = None) -> Path:
        """Write a complete checkpoint of the current step; returns its directory."""
        trainer = self.trainer
        name = f"step-{trainer.global_step:08d}"
        rng_states = distributed.all_gather_objects(rng_state())
        final = self.directory / name
        if distributed.is_main_process():
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".tmp-{name}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            save_model(trainer.unwrapped_model, str(tmp / MODEL_FILE))
            torch.save(self._state(rng_states), tmp / STATE_FILE)
            meta = {
                "step": trainer.global_step, "epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch,
                "world_size": trainer.world_size, "metrics": dict(metrics or {}),
                "parameter_shapes": parameter_shapes(trainer.unwrapped_model),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            _fsync_tree(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.directory)
            write_text_atomic(self.directory / "latest", name)
            self._rotate()
        distributed.barrier()
        return final

    def _state(self, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        trainer = self.trainer
        scaler = trainer.strategy.scaler
        return {
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "global_step": trainer.global_step,
            "epoch": trainer.epoch,
            "batch_in_epoch": trainer.batch_in_epoch,
            "best_value": self.best_value,
            "bad_evaluations": self.bad_evaluations,
            "rng": rng_states,
        }

    def resume(self, path: Path) -> None:
        """Restore model, optimizer, scheduler, counters and RNG exactly as they were at ``path``."""
        trainer = self.trainer
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        self._check_compatible(path, meta)
        load_model(trainer.unwrapped_model, str(path / MODEL_FILE), device=str(trainer.device))
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        trainer.optimizer.load_state_dict(state["optimizer"])
        if trainer.scheduler is not None and state["scheduler"] is not None:
            trainer.scheduler.load_state_dict(state["scheduler"])
        if trainer.strategy.scaler is not None and state["scaler"] is not None:
            trainer.strategy.scaler.load_state_dict(state["scaler"])
        trainer.global_step, trainer.epoch = state["global_step"], state["epoch"]
        trainer.batch_in_epoch = state["batch_in_epoch"]
        self.best_value, self.bad_evaluations = state["best_value"], state["bad_evaluations"]
        set_rng_state(state["rng"][trainer.rank])
        trainer.logger.info("resumed from %s (epoch %d, step %d, batch %d of the epoch)", path, trainer.epoch + 1,
                            trainer.global_step, trainer.batch_in_epoch)

    def _check_compatible(self, path: Path, meta: Mapping[str, Any]) -> None:
        trainer = self.trainer
        problems = []
        if meta["world_size"] != trainer.world_size:
            problems.append(f"it was written by {meta['world_size']} process(es), this run has {trainer.world_size} "
                            f"(the data order depends on it: resume with the same number of processes)")
        current = parameter_shapes(trainer.unwrapped_model)
        saved = meta["parameter_shapes"]
        missing, extra = sorted(set(saved) - set(current)), sorted(set(current) - set(saved))
        changed = [f"{k}: {saved[k]} → {current[k]}" for k in sorted(set(saved) & set(current)) if saved[k] != current[k]]
        if missing or extra or changed:
            details = (changed[:3] + [f"missing in this model: {', '.join(missing[:3])}"] * bool(missing)
                       + [f"new in this model: {', '.join(extra[:3])}"] * bool(extra))
            problems.append("the model differs from the checkpoint's: " + "; ".join(details))
        if problems:
            raise ConfigError(f"cannot resume from {path}: " + " | ".join(problems) + ". Start a new run (TRAINER.RESUME '') or restore the old config.")

    def load_weights(self, path: str) -> None:
        """LOAD_FROM: initialise the model from a checkpoint's weights only (a fine-tuning start point)."""
        target = Path(path)
        file = target / MODEL_FILE if target.is_dir() else target
        if not file.is_file():
            raise ConfigError(f"TRAINER.LOAD_FROM {path}: no {MODEL_FILE} found there")
        missing, unexpected = load_model(self.trainer.unwrapped_model, str(file), strict=False, device=str(self.trainer.device))
        self.trainer.logger.info("loaded weights from %s (missing %d, unexpected %d keys)", file, len(missing), len(unexpected))

    def judge(self, value: float, mode: str) -> bool:
        """Compare an evaluation with the best so far (once per step); an improvement becomes the new best.

        Counts evaluations without improvement for early stopping. A second call at the same step
        (``save_best_model`` from a prototype trainer, then the checkpoint hook) returns False and counts nothing.
        """
        if self.judged_step == self.trainer.global_step:
            return False
        self.judged_step = self.trainer.global_step
        if self.best_value is not None and not (value < self.best_value if mode == "min" else value > self.best_value):
            self.bad_evaluations += 1
            return False
        self.best_value, self.bad_evaluations = float(value), 0
        return True

    def save_if_best(self, metrics: Mapping[str, float], monitor: str, mode: str) -> bool:
        """Save a checkpoint and mark it best when ``metrics[monitor]`` improved; returns whether it did."""
        value = metrics.get(monitor)
        if value is None or not self.judge(value, mode):
            return False
        path = self.save(metrics)
        if distributed.is_main_process():
            write_text_atomic(self.directory / "best.json", json.dumps({"checkpoint": path.name, "monitor": monitor, "value": value}))
        distributed.barrier()
        return True

    def best_checkpoint(self) -> Path | None:
        return best_checkpoint(self.directory)

    def _rotate(self) -> None:
        keep = max(1, int(self.trainer.settings["keep_last"]))
        best = self.best_checkpoint()
        complete = sorted(p for p in self.directory.glob("step-*") if is_complete(p))
        for old in complete[:-keep]:
            if best is None or old.name != best.name:
                shutil.rmtree(old, ignore_errors=True)
        for leftover in self.directory.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
