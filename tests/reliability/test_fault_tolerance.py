"""Fault tolerance as a cluster inflicts it: damaged checkpoints, a full disk while saving, a killed process that
the launcher restarts, signals in the middle of a save. Training runs are real `trainlab train` processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainlab.commands.launch import job_run_dir
from trainlab.engine.checkpoint import Checkpointer
from trainlab.engine.checkpoint_files import checkpoint_problem, latest_checkpoint
from trainlab.engine.strategies import Strategy
from trainlab.errors import ConfigError

ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
BLOBS, FAULTS = ENGINE_TESTS / "blobs.yaml", ENGINE_TESTS / "toy_faults.py"
# 64 samples / batch 8: 8 steps in one epoch, a checkpoint every 2 steps, all four kept; dropout on (RNG matters).
EPOCH = ("TRAINER.EPOCHS", "1", "TRAINER.SAVE_EVERY_STEPS", "2", "TRAINER.KEEP_LAST", "4")


def train(cwd: Path, *overrides: str, nproc: int = 1, max_restarts: int = 0) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    args = ["train", str(BLOBS), "TRAINER.OUTPUT_DIR", str(cwd / "out"), *overrides, "--import", str(FAULTS)]
    args += ["--nproc", str(nproc)] * (nproc > 1) + ["--max-restarts", str(max_restarts)] * bool(max_restarts)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def only_run(cwd: Path) -> Path:
    runs = sorted((cwd / "out" / "trainlab").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def logged_losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, train/loss) of every line of metrics.jsonl, in the order written (a resume appends)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(m["step"], m["train/loss"]) for m in lines if "train/loss" in m]


def flip_bit(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 1
    file.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of one epoch: steps 1-8, checkpoints at steps 2, 4, 6 and 8."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = train(cwd, *EPOCH)
    assert proc.returncode == 0, proc.stderr
    return only_run(cwd)


def test_damaged_checkpoints_fall_back_to_the_newest_intact_one(reference, tmp_path):
    run_dir = shutil.copytree(reference, tmp_path / "run")
    checkpoints = run_dir / "checkpoints"
    model = checkpoints / "step-00000008" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:600])  # `latest` cut short: its size gives it away
    flip_bit(checkpoints / "step-00000006" / "trainer_state.pt")  # the next one: one bit, only its checksum tells

    proc = train(tmp_path, *EPOCH, "TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert (f"checkpoint {checkpoints / 'step-00000008'} is damaged (model.safetensors has 600 bytes" in warnings[0]
            and "so is step-00000006" in warnings[0] and "resuming from step-00000004" in warnings[0])

    resumed = logged_losses(run_dir)[8:]  # after the reference's own 8 lines
    assert resumed == logged_losses(reference)[4:]  # steps 5-8 again, bit-identical
    assert sorted(p.name for p in checkpoints.glob("damaged-*")) == ["damaged-step-00000006", "damaged-step-00000008"]
    for step in ("step-00000006", "step-00000008"):  # written anew by the resumed run
        assert checkpoint_problem(checkpoints / step, checksums=True) is None


def test_no_intact_checkpoint_is_one_line_naming_the_directory(reference, tmp_path):
    checkpoints = shutil.copytree(reference / "checkpoints", tmp_path / "checkpoints")
    for step in checkpoints.glob("step-*"):
        flip_bit(step / "model.safetensors")
    latest = latest_checkpoint(checkpoints)
    assert latest is not None  # sizes alone (listings) still see whole checkpoints

    with pytest.raises(ConfigError) as error:
        Checkpointer(Strategy(torch.device("cpu")), checkpoints).intact(latest)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"no intact checkpoint to resume in {checkpoints} (")
    assert "step-00000002: model.safetensors differs from the sha256 in meta.json" in message
    assert not list(checkpoints.glob("damaged-*"))  # nothing is moved when nothing could be used


def test_failed_writes_of_safetensors_and_torch_save_are_told_apart_from_bugs(tmp_path):
    # A file-size limit makes writes fail (EFBIG) as a full disk does (ENOSPC); Python ignores SIGXFSZ.
    script = """if True:
        import sys, torch
        from safetensors.torch import save_file
        from trainlab.engine.checkpoint_files import storage_failure
        tensors = {"w": torch.zeros(64, 1024)}
        for save in (lambda: save_file(tensors, "model.safetensors"), lambda: torch.save(tensors, "state.pt"),
                     lambda: torch.zeros(2) @ torch.zeros(3)):
            try:
                save()
            except Exception as exc:
                print(storage_failure(exc))
    """

    def limit_file_size() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))

    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, preexec_fn=limit_file_size, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.splitlines() == ["File too large", "a file could not be written", "None"], proc.stderr


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_says_what_to_do(tmp_path):
    # From step 4 no file may grow past 32 kB; a checkpoint of this wider model is about 180 kB.
    proc = train(tmp_path, *EPOCH, "MODEL.HIDDEN", "1024",
                 "TRAINER.HOOKS", "[{NAME: FileSizeLimitHook, STEP: 4, MAX_BYTES: 32000}]")
    assert proc.returncode == 2, proc.stderr
    checkpoints = only_run(tmp_path) / "checkpoints"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("trainlab:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.fullmatch(
        rf"trainlab: error: cannot save checkpoint step-00000004 in {re.escape(str(checkpoints))}: File too large "
        r"while writing a checkpoint of about 18\d\.\d kB, [\d.]+ [kMG]?B free there — free space or choose "
        r"TRAINER\.OUTPUT_DIR elsewhere \(step-00000002 is intact and still latest\)", errors[0]), errors[0]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-00000002"]  # no .tmp-step-00000004
    assert (checkpoints / "latest").read_text() == "step-00000002"
    assert checkpoint_problem(checkpoints / "step-00000002", checksums=True) is None


def test_sigterm_twice_during_a_save_completes_it_then_stops_and_resumes_exactly(reference, tmp_path):
    hook = "[{NAME: SignalDuringSaveHook, STEP: 4, SIGNALS: [SIGTERM, SIGTERM]}]"  # a scheduler's notice, twice
    proc = train(tmp_path, *EPOCH, "TRAINER.HOOKS", hook)
    assert proc.returncode == 130, proc.stderr
    run_dir = only_run(tmp_path)
    checkpoints = run_dir / "checkpoints"
    # The half-written model file was finished; the stop came at the next step boundary, with a checkpoint.
    assert sorted(p.name for p in checkpoints.glob("*step-*")) == ["step-00000002", "step-00000004", "step-00000005"]
    assert all(checkpoint_problem(step, checksums=True) is None for step in checkpoints.glob("step-*"))
    assert (checkpoints / "latest").read_text() == "step-00000005"

    resumed = train(tmp_path, *EPOCH, "TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {checkpoints / 'step-00000005'}" in resumed.stdout
    assert logged_losses(run_dir) == logged_losses(reference)  # steps 1-5, then 6-8: bit-identical


def test_ctrl_c_twice_during_a_save_leaves_no_half_written_checkpoint(tmp_path):
    hook = "[{NAME: SignalDuringSaveHook, STEP: 4, SIGNALS: [SIGINT, SIGINT]}]"  # the second Ctrl-C stops at once
    proc = train(tmp_path, *EPOCH, "TRAINER.HOOKS", hook)
    assert proc.returncode == 130, proc.stderr
    checkpoints = only_run(tmp_path) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-00000002"]  # the .tmp is gone
    assert checkpoint_problem(checkpoints / "step-00000002", checksums=True) is None


def test_a_killed_process_is_restarted_and_the_run_ends_as_if_uninterrupted(tmp_path):
    ddp = ("TRAINER.EPOCHS", "1", "TRAINER.SAVE_EVERY_STEPS", "1", "TRAINER.BATCH_SIZE_TRAIN", "4")
    reference = train(tmp_path / "reference", *ddp, nproc=2, max_restarts=1)
    assert reference.returncode == 0, reference.stderr
    killed = train(tmp_path / "killed", *ddp, "TRAINER.HOOKS", "[{NAME: KillOnceHook, STEP: 5, RANK: 1}]",
                   nproc=2, max_restarts=1)
    assert killed.returncode == 0, killed.stderr
    run_dir = only_run(tmp_path / "killed")  # the restarted processes continued the same run directory
    assert f"restart 1 of 1 after a process failed: {run_dir}, resuming from step-00000005" in killed.stderr
    assert [step for step, _ in logged_losses(run_dir)] == list(range(1, 9))  # 1-5 before the kill, 6-8 after
    reference_dir = only_run(tmp_path / "reference")
    assert logged_losses(run_dir) == logged_losses(reference_dir)
    final = load_file(run_dir / "best_model.safetensors")
    expected = load_file(reference_dir / "best_model.safetensors")
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in expected)


def test_restarts_on_several_nodes_need_one_run_directory_for_all(tmp_path):
    with pytest.raises(ConfigError, match="--max-restarts on several nodes needs TRAINER.RUN_DIR"):
        job_run_dir([str(BLOBS)], nnodes=2)
    assert job_run_dir([str(BLOBS), "TRAINER.RUN_DIR", str(tmp_path)], nnodes=2) == tmp_path
