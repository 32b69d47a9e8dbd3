"""Launching as users do: the scripts/ convention, torchrun -m, and the launcher's helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine_helpers import BLOBS_CONFIG, evaluations, run_dir_of

from trainlab.engine.distributed import expand_slurm_nodelist, slurm_environment
from trainlab.commands.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["TRAINER.EPOCHS", "1", "TRAINER.SAVE", "false"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PATH": os.environ["PATH"]}


def test_script_convention_falls_back_to_cpu_processes(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "train.sh"), "0,1", str(BLOBS_CONFIG), *QUICK,
                           "TRAINER.OUTPUT_DIR", str(tmp_path / "out")], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "running 2 CPU process(es)" in proc.stderr
    run_dir = run_dir_of(tmp_path / "out")
    assert "2 process(es) on cpu" in (run_dir / "train.log").read_text()
    assert evaluations(run_dir)[0]["val/num_samples"] == 13


def test_torchrun_module_entry_point(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "trainlab.train", str(BLOBS_CONFIG), *QUICK, "TRAINER.OUTPUT_DIR", str(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 process(es) on cpu" in (run_dir_of(tmp_path / "out") / "train.log").read_text()


def test_script_without_arguments_prints_usage():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "train.sh")], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_slurm_nodelists_expand():
    assert expand_slurm_nodelist("gpu[01-03,07],cpu5") == ["gpu01", "gpu02", "gpu03", "gpu07", "cpu5"]
    assert expand_slurm_nodelist("node7") == ["node7"]


def test_slurm_job_step_becomes_torchrun_variables(monkeypatch):
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_NODELIST", "gpu[10-11]")
    env = slurm_environment()
    assert env == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu10", "MASTER_PORT": "24242"}
