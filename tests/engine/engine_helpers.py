"""Run `trainlab` as a user would (a subprocess) and read what the run wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BLOBS_CONFIG = HERE / "blobs.yaml"


def run_trainlab(args: list[str], cwd: Path, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


def run_dir_of(output_dir: Path) -> Path:
    runs = sorted((output_dir / "trainlab").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def step_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["train/loss"] for m in read_metrics(run_dir) if "train/loss" in m}


def evaluations(run_dir: Path, prefix: str = "val") -> list[dict]:
    return [m for m in read_metrics(run_dir) if f"{prefix}/loss" in m]
