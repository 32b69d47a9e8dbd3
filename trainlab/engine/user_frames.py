"""Which frames of a traceback are the user's (not TrainLab's, torch's or Python's), and paths as a user reads
them: for errors that name the user's file and line."""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path

import torch

_TRAINLAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_STDLIB_DIRS = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}


def user_frame(frames: list[traceback.FrameSummary]) -> traceback.FrameSummary | None:
    """The innermost frame of code that is neither TrainLab's, torch's nor Python's own (the user's)."""
    for frame in reversed(frames):
        name = frame.filename
        if name.startswith(("<", _TORCH_DIR + os.sep)) or is_trainlab_file(name):
            continue
        if any(name.startswith(d + os.sep) for d in _STDLIB_DIRS) and "site-packages" not in name:
            continue
        return frame
    return None


def short_path(filename: str) -> str:
    """``filename`` relative to the working directory if inside it; TrainLab's files as ``trainlab/...``."""
    path = Path(filename)
    if path.is_relative_to(Path.cwd()):
        return str(path.relative_to(Path.cwd()))
    if is_trainlab_file(filename):
        return str(path.relative_to(Path(_TRAINLAB_DIR).parent))
    return filename


def is_trainlab_file(filename: str) -> bool:
    """Whether ``filename`` is one of TrainLab's own sources."""
    return filename.startswith(_TRAINLAB_DIR + os.sep)


__all__ = ["is_trainlab_file", "short_path", "user_frame"]
