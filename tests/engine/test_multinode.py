"""Nodes started as separate machines start them, and Slurm tasks, train like one node's 2 processes.

Each "node" is its own `trainlab train --nnodes 2 --node-rank i` process on localhost; each Slurm task is a
`trainlab train` with Slurm's variables, as srun starts it from scripts/slurm_train.sbatch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import BLOBS_CONFIG, run_trainlab, step_losses

from trainlab.commands.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
QUICK = ("TRAINER.EPOCHS", "1", "TRAINER.SAVE", "false", "MODEL.DROPOUT", "0.0")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT") and not k.startswith("SLURM_")}
    return {**env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def _run_together(commands: list[list[str]], envs: list[dict[str, str]], cwd: Path) -> list[tuple[int, str]]:
    """Start every command at once (as on separate machines); their exit codes and stderr."""
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for cmd, env in zip(commands, envs)]
    try:
        stderrs = [proc.communicate(timeout=90)[1] for proc in procs]
        return [(proc.returncode, stderr) for proc, stderr in zip(procs, stderrs)]
    finally:
        for proc in procs:
            proc.kill()


def _assert_trained_like(run_dir: Path, reference: dict[int, float]) -> None:
    assert "2 process(es) on cpu" in (run_dir / "train.log").read_text()
    losses = step_losses(run_dir)
    assert sorted(losses) == sorted(reference) == [1, 2, 3, 4]
    for step, loss in reference.items():
        assert abs(losses[step] - loss) < 1e-5, (step, losses[step], loss)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict[int, float]:
    """Per-step losses of the same run as one node with two processes (`--nproc 2`)."""
    run_dir = tmp_path_factory.mktemp("one-node") / "run"
    proc = run_trainlab(["train", str(BLOBS_CONFIG), *QUICK, "TRAINER.RUN_DIR", str(run_dir), "--nproc", "2"],
                        cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    return step_losses(run_dir)


@pytest.mark.parametrize("meeting", ["master", "rdzv-endpoint"])
def test_two_nodes_train_like_two_processes_on_one(tmp_path, two_processes, meeting):
    port = str(free_port())
    rendezvous = (["--master-addr", "127.0.0.1", "--master-port", port] if meeting == "master"
                  else ["--rdzv-endpoint", f"127.0.0.1:{port}"])
    run_dir = tmp_path / "run"
    commands = [[sys.executable, "-m", "trainlab", "train", str(BLOBS_CONFIG), *QUICK, "TRAINER.RUN_DIR",
                 str(run_dir), "--nnodes", "2", "--node-rank", str(node), *rendezvous] for node in (0, 1)]
    results = _run_together(commands, [_env(), _env()], tmp_path)
    assert [code for code, _ in results] == [0, 0], "\n".join(stderr for _, stderr in results)
    _assert_trained_like(run_dir, two_processes)


# Stands in for srun on one machine: SLURM_NTASKS copies of the command as tasks 0..N-1 (ignores options).
FAKE_SRUN = """#!/usr/bin/env bash
while [[ $1 == --* ]]; do shift; done
pids=()
for ((task = 0; task < SLURM_NTASKS; task++)); do
  SLURM_PROCID=$task SLURM_LOCALID=$task "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""


def test_slurm_script_tasks_train_like_two_processes(tmp_path, two_processes):
    """scripts/slurm_train.sbatch runs `srun trainlab train`: each task takes its rank from Slurm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    run_dir = tmp_path / "run"
    env = _env(PATH=f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", SLURM_JOB_ID="4242",
               SLURM_NTASKS="2", SLURM_NODELIST="localhost", MASTER_PORT=str(free_port()))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_train.sbatch"), str(BLOBS_CONFIG), *QUICK,
                           "TRAINER.RUN_DIR", str(run_dir), "TRAINER.TIMEOUT_S", "60"],
                          check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    _assert_trained_like(run_dir, two_processes)
