"""Fixtures for engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import BLOBS_CONFIG, run_trainlab


@pytest.fixture
def blobs(tmp_path: Path):
    """Run the blobs config with overrides into tmp_path/out; returns (completed process, run dir or None)."""

    def run(*overrides: str, nproc: int = 1, extra: tuple[str, ...] = (), timeout: float = 120):
        out = tmp_path / "out"
        args = ["train", str(BLOBS_CONFIG), "TRAINER.OUTPUT_DIR", str(out), *overrides, *extra]
        if nproc > 1:
            args += ["--nproc", str(nproc)]
        proc = run_trainlab(args, cwd=tmp_path, timeout=timeout)
        runs = sorted((out / "trainlab").iterdir()) if (out / "trainlab").is_dir() else []
        return proc, (runs[-1] if runs else None)

    return run
