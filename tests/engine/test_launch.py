"""Launching as users do: the scripts/ convention, torchrun -m, and the launcher's helpers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import BLOBS_CONFIG, evaluations, run_dir_of, run_trainlab

from trainlab.commands.launch import LaunchOptions, free_port
from trainlab.engine.rendezvous import expand_slurm_nodelist, slurm_environment
from trainlab.errors import ConfigError

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
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_NODELIST", "gpu[10-11]")
    env = slurm_environment()
    assert env == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu10", "MASTER_PORT": "24242"}


def test_an_srun_step_counts_its_own_tasks_and_nodes(monkeypatch):
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "8")  # the allocation's
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")  # this srun's
    monkeypatch.setenv("SLURM_NODELIST", "gpu[01-04]")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu[03-04]")
    monkeypatch.setenv("MASTER_PORT", "29611")
    env = slurm_environment()
    assert env == {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "gpu03",
                   "MASTER_PORT": "29611"}


def test_processes_that_torchrun_started_keep_its_variables(monkeypatch):
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("RANK", "5")
    assert slurm_environment() == {}


def test_every_node_names_the_same_rendezvous(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    nodes = [LaunchOptions(nnodes=2, node_rank=rank, master_port=29611).resolve() for rank in (0, 1)]
    assert nodes[0].rdzv_id == nodes[1].rdzv_id == "trainlab"
    assert LaunchOptions(nnodes=2, rdzv_endpoint="head:29400", rdzv_id="exp7").resolve().rdzv_id == "exp7"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert LaunchOptions(nnodes=2, master_port=29611).resolve().rdzv_id == "4242"


@pytest.mark.parametrize("options, message", [
    ({"master_port": 0}, "--master-port must be a TCP port in 1..65535, got 0"),
    ({"master_port": 65536}, "--master-port must be a TCP port in 1..65535, got 65536"),
    ({"rdzv_endpoint": "head:port"}, "--rdzv-endpoint takes HOST:PORT with a port in 1..65535"),
    ({"rdzv_endpoint": "head:0"}, "got 'head:0'"),
])
def test_impossible_meeting_points_are_refused(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        LaunchOptions(nnodes=2, **options).resolve()


def test_a_rendezvous_endpoint_may_leave_the_port_to_c10d():
    assert LaunchOptions(nnodes=2, rdzv_endpoint="head").resolve().rdzv_endpoint == "head"


def test_an_impossible_master_port_is_one_line_before_anything_starts(tmp_path):
    args = ["train", str(BLOBS_CONFIG), "--nnodes", "2", "--node-rank", "1", "--master-port", "70000"]
    proc = run_trainlab(args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "trainlab: error: --master-port must be a TCP port in 1..65535, got 70000\n"
    assert not (tmp_path / "work_dirs").exists()


def test_a_busy_master_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_trainlab(["train", str(BLOBS_CONFIG), "--nnodes", "2", "--master-port", str(port)],
                            cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"trainlab: error: the processes could not meet at 127.0.0.1:{port} ("), last
    assert "address already in use" in proc.stderr and "Traceback" not in proc.stderr
