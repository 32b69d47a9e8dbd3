"""Run `trainlab` as a user would and check how it fails: one clear line, exit code 2, nothing of theirs touched.

    before = snapshot(tmp_path)
    proc = run_trainlab(["eval", str(config), "--checkpoint", str(damaged)], cwd=tmp_path)
    assert_user_error(proc, str(damaged), before, snapshot(tmp_path))
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

USER_ERROR_EXIT = 2
MAX_ERROR_LINES = 2


def run_trainlab(args: Sequence[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m trainlab ARGS`` in ``cwd`` with one thread per process, as the CI runs it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_module(module: str, args: Sequence[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` (a command such as ``trainlab.preprocess.sample_data``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by its path relative to ``root`` (symbolic links by their target)."""
    root = Path(root)
    hashes = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            hashes[str(path.relative_to(root))] = "link:" + os.readlink(path)
        elif path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            hashes[str(path.relative_to(root))] = digest.hexdigest()
    return hashes


def changed_files(before: Mapping[str, str], after: Mapping[str, str], ignore: Collection[str] = ()) -> list[str]:
    """Files of ``before`` that are gone or different in ``after`` (new files are not counted)."""
    return sorted(path for path, digest in before.items()
                  if path not in ignore and Path(path).name not in ignore and after.get(path) != digest)


def assert_user_error(proc: subprocess.CompletedProcess, culprit: str | Sequence[str], before: Mapping[str, str],
                      after: Mapping[str, str], *, ignore: Collection[str] = ()) -> str:
    """A user's mistake, reported the project's way; returns the error line.

    Exit code 2; at most two lines on stderr, one of them ``trainlab: error: ...``; no traceback; every
    ``culprit`` (a key, path or value from the input) named in that line; every file of ``before`` unchanged
    in ``after``. ``ignore``: relative paths or file names allowed to change (e.g. a log that records the attempt).
    """
    stderr = proc.stderr.strip()
    lines = [line for line in stderr.splitlines() if line.strip()]
    report = f"exit {proc.returncode}\n--- stderr ---\n{stderr[-3000:]}\n--- stdout ---\n{proc.stdout[-1500:]}"
    assert proc.returncode == USER_ERROR_EXIT, report
    assert "Traceback" not in proc.stderr + proc.stdout, report
    assert len(lines) <= MAX_ERROR_LINES, report
    errors = [line for line in lines if line.startswith("trainlab: error")]
    assert errors, report
    for name in [culprit] if isinstance(culprit, str) else culprit:
        assert name in errors[0], f"{name!r} not named in: {errors[0]}"
    changed = changed_files(before, after, ignore)
    assert not changed, f"changed or removed by a command that failed: {changed}"
    return errors[0]


__all__ = ["assert_user_error", "changed_files", "run_module", "run_trainlab", "snapshot"]
