"""A rank that stops calling collectives ends the run after TRAINER.TIMEOUT_S, with one line saying where."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from engine_helpers import BLOBS_CONFIG, HERE

from trainlab.commands.launch import free_port

FAULTS = HERE / "toy_faults.py"
TIMEOUT_S = 5
NO_VAL = ("TRAINER.MONITOR", "val/loss", "TRAINER.MONITOR_MODE", "min", "TRAINER.SAVE", "false")


def _line_of(marker: str) -> int:
    lines = FAULTS.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


def _train(tmp_path: Path, *overrides: str, nproc: int = 2, timeout_s: int = TIMEOUT_S):
    """`trainlab train` of the blobs config with the faulty components; the finished process, its seconds."""
    args = [sys.executable, "-m", "trainlab", "train", str(BLOBS_CONFIG), "--import", str(FAULTS),
            "--nproc", str(nproc), "TRAINER.OUTPUT_DIR", str(tmp_path / "out"),
            "TRAINER.TIMEOUT_S", str(timeout_s), *NO_VAL, *overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.run(args, check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=90)
    return proc, time.monotonic() - start


def _timeout_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "trainlab: error" in line and " s in " in line]


def test_a_rank_that_stops_calling_collectives_ends_the_run_with_one_line(tmp_path):
    proc, elapsed = _train(tmp_path, "TRAINER.NAME", "StalledReduceTrainer")
    assert proc.returncode == 1, proc.stderr
    [line] = _timeout_lines(proc.stderr)
    where = f"{FAULTS}:{_line_of('calls TrainLab')}"
    expected = f"trainlab: error (rank 0): waited 5 s in all_reduce (reduce_value, called from {where}) for"
    assert line.startswith(f"{expected} the other processes — "), line
    assert line.endswith("TRAINER.TIMEOUT_S"), line
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "rank 1 stopped: another process failed" in proc.stderr
    assert "process 0 exited with code 1" in proc.stderr
    # start-up (~8 s on 2 idle cores) + the timeout; without it the stalled rank would hold the run for 60 s
    assert elapsed < TIMEOUT_S + 25, f"took {elapsed:.1f}s"


def test_a_direct_torch_distributed_call_is_named_too(tmp_path):
    proc, _ = _train(tmp_path, "TRAINER.NAME", "StalledTorchAllReduceTrainer", timeout_s=3)  # the file < 40 s
    assert proc.returncode == 1, proc.stderr
    [line] = _timeout_lines(proc.stderr)
    where = f"{FAULTS}:{_line_of('calls torch.distributed')}"
    assert f"(rank 0): waited 3 s in all_reduce (called from {where}) for the other processes" in line, line
    assert "Traceback" not in proc.stderr, proc.stderr


def test_a_process_whose_peers_never_come_stops_after_the_timeout(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    args = [sys.executable, "-m", "trainlab.train", str(BLOBS_CONFIG), "TRAINER.OUTPUT_DIR",
            str(tmp_path / "out"), "TRAINER.TIMEOUT_S", "2"]
    proc = subprocess.run(args, check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "trainlab: error (rank 0): waited 2 s for all 2 processes to join at 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is about CUDA missing")
def test_user_code_that_calls_cuda_on_a_cpu_run_gets_one_line(tmp_path):
    proc, _ = _train(tmp_path, "TRAINER.NAME", "CudaSyncTrainer", nproc=1)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    where = f"{FAULTS}:{_line_of('CUDA call')}"
    assert line.startswith(f"trainlab: error: {where} "), line
    assert "guard it with `if torch.cuda.is_available()`, or run with --gpus" in line
