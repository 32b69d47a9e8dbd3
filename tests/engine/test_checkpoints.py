"""Checkpoints that never lose work: kill-and-resume equality, kill during save, rotation, stopping rules."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from engine_helpers import BLOBS_CONFIG, evaluations, read_metrics, step_losses

# 64 samples / batch 8 = 8 steps per epoch, 2 epochs; a checkpoint every 2 steps; dropout on (RNG matters).
SAVE_OFTEN = ("TRAINER.SAVE_EVERY_STEPS", "2", "TRAINER.KEEP_LAST", "3")


@pytest.mark.parametrize("nproc, kill_step", [(1, 5), (2, 11)])
def test_resume_after_sigkill_reproduces_every_later_loss(blobs, nproc, kill_step):
    batch = "8" if nproc == 1 else "4"
    reference, ref_dir = blobs(*SAVE_OFTEN, "TRAINER.BATCH_SIZE_TRAIN", batch, nproc=nproc)
    assert reference.returncode == 0, reference.stderr

    killed, run_dir = blobs(*SAVE_OFTEN, "TRAINER.BATCH_SIZE_TRAIN", batch,
                            "TRAINER.HOOKS", f"[{{NAME: KillAtStepHook, STEP: {kill_step}}}]", nproc=nproc)
    assert killed.returncode != 0
    assert max(step_losses(run_dir)) == kill_step  # it really died mid-epoch, after step kill_step

    resumed, _ = blobs(*SAVE_OFTEN, "TRAINER.BATCH_SIZE_TRAIN", batch, "TRAINER.RESUME", "auto",
                       "TRAINER.RUN_DIR", str(run_dir), nproc=nproc)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {run_dir / 'checkpoints' / f'step-{kill_step - 1:08d}'}" in resumed.stdout

    expected = step_losses(ref_dir)
    continued = [m for m in read_metrics(run_dir) if "train/loss" in m][kill_step:]  # lines after the kill
    assert [m["step"] for m in continued] == list(range(kill_step, 17))  # no batch repeated, none skipped
    for m in continued:
        if nproc == 1:
            assert m["train/loss"] == expected[m["step"]], m  # bit-identical
        else:
            assert abs(m["train/loss"] - expected[m["step"]]) < 1e-6, m
    assert evaluations(run_dir)[-1]["val/loss"] == pytest.approx(evaluations(ref_dir)[-1]["val/loss"], abs=1e-6)


def test_kill_during_save_leaves_the_previous_checkpoint_to_resume_from(blobs):
    killed, run_dir = blobs(*SAVE_OFTEN, "TRAINER.HOOKS", "[{NAME: KillDuringSaveHook, STEP: 4}]")
    assert killed.returncode != 0
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "latest").read_text() == "step-00000002"
    assert not (checkpoints / "step-00000004").exists()
    assert list(checkpoints.glob(".tmp-step-00000004"))  # the half-written one never got its final name

    resumed, _ = blobs(*SAVE_OFTEN, "TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "step-00000002" in resumed.stdout


def test_rotation_keeps_the_last_k_and_the_best(blobs):
    # A checkpoint every step over 3 epochs: only the last two survive rotation, plus the best one.
    proc, run_dir = blobs("TRAINER.SAVE_EVERY_STEPS", "1", "TRAINER.KEEP_LAST", "2", "TRAINER.EPOCHS", "3")
    assert proc.returncode == 0, proc.stderr
    checkpoints = run_dir / "checkpoints"
    best = json.loads((checkpoints / "best.json").read_text())
    kept = sorted(p.name for p in checkpoints.glob("step-*"))
    assert kept[-2:] == ["step-00000023", "step-00000024"]
    assert best["checkpoint"] in kept and len(kept) <= 3
    assert best["value"] == max(e["val/accuracy"] for e in evaluations(run_dir))
    assert (run_dir / "best_model.safetensors").is_file()


def test_early_stopping_after_patience_evaluations_without_improvement(blobs):
    proc, run_dir = blobs("TRAINER.OPTIMIZER_KWARGS", "{lr: 1.0e-30}", "TRAINER.EPOCHS", "10", "TRAINER.PATIENCE", "2")
    assert proc.returncode == 0, proc.stderr
    assert len(evaluations(run_dir)) == 3  # the first sets the best, two more without improvement
    assert "early stopping" in proc.stdout


def test_nonfinite_loss_stops_with_the_step_named_and_last_checkpoint_intact(blobs):
    proc, run_dir = blobs(*SAVE_OFTEN, "DATASET.TRAIN.POISON_INDEX", "5", "TRAINER.EPOCHS", "1",
                          "TRAINER.GROUP_BY_LENGTH", "false")
    assert proc.returncode == 1
    assert "non-finite loss at epoch 1" in proc.stderr
    latest = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text()
    assert (latest / "model.safetensors").is_file()


def test_nonfinite_loss_can_skip_the_step(blobs):
    proc, run_dir = blobs("DATASET.TRAIN.POISON_INDEX", "5", "TRAINER.EPOCHS", "1", "TRAINER.NONFINITE_LOSS", "skip")
    assert proc.returncode == 0, proc.stderr
    assert "step skipped" in proc.stdout + proc.stderr
    assert len(step_losses(run_dir)) == 7  # one of 8 steps skipped
    assert evaluations(run_dir)[-1]["val/loss"] < 1.0  # the weights stayed finite


def test_resume_with_a_changed_model_fails_clearly(blobs):
    first, run_dir = blobs("TRAINER.EPOCHS", "1")
    assert first.returncode == 0, first.stderr
    changed, _ = blobs("TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir), "MODEL.HIDDEN", "32")
    assert changed.returncode == 2
    assert "cannot resume" in changed.stderr and "net.0.weight: [16, 8] → [32, 8]" in changed.stderr
    assert "Traceback" not in changed.stderr


def test_sigterm_saves_a_checkpoint_then_resume_finishes(blobs, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "trainlab", "train", str(BLOBS_CONFIG), "TRAINER.OUTPUT_DIR", str(out),
           "TRAINER.HOOKS", "[{NAME: SlowStepsHook, SECONDS: 0.3}]"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob("trainlab/*/metrics.jsonl")):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run_dir = next(out.glob("trainlab/*"))
    saved_step = int((run_dir / "checkpoints" / "latest").read_text().split("-")[1])
    assert 0 < saved_step < 16
    resumed, _ = blobs("TRAINER.RESUME", "auto")  # auto finds the newest run of the project
    assert resumed.returncode == 0, resumed.stderr
    assert max(step_losses(run_dir)) == 16


def test_resume_with_more_epochs_decays_over_the_new_length_and_does_not_validate_twice(blobs):
    """1 epoch (8 steps, validated and checkpointed at step 8), then resumed with EPOCHS 2: the schedule decays
    over 16 steps from where it was (not stuck at 0), and step 8's validation is not run again."""
    first, run_dir = blobs("TRAINER.EPOCHS", "1")
    assert first.returncode == 0, first.stderr
    resumed, _ = blobs("TRAINER.EPOCHS", "2", "TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert [e["step"] for e in evaluations(run_dir)] == [8, 16]
    reference, ref_dir = blobs("TRAINER.EPOCHS", "2", "TRAINER.RUN_DIR", str(run_dir.parent / "reference"))
    assert reference.returncode == 0, reference.stderr
    rates = {m["step"]: m["train/lr"] for m in read_metrics(run_dir) if "train/lr" in m and m["step"] > 8}
    expected = {m["step"]: m["train/lr"] for m in read_metrics(ref_dir) if "train/lr" in m and m["step"] > 8}
    assert rates == pytest.approx(expected) and min(rates.values()) < max(rates.values()) and rates[9] > 0


def test_a_prototype_trainer_evaluates_the_test_split_in_its_own_loop(blobs):
    """Its model takes the features alone: the test split goes through its run_one_epoch, nothing is saved."""
    proc, run_dir = blobs("TRAINER.NAME", "PrototypeStyleTrainer", "MODEL.NAME", "FeaturesOnlyMLP",
                          "TRAINER.LOSS_FN", "CrossEntropyLoss", "TRAINER.MONITOR", "val/loss", "TRAINER.MONITOR_MODE",
                          "min", "DATASET.TEST", "{NAME: BlobsDataset, SIZE: 10, SEED: 2}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = [m for m in read_metrics(run_dir) if "test/loss" in m]
    assert len(test) == 1 and test[0]["test/loss"] > 0
    assert len(list(run_dir.glob("*_epoch_*.pt"))) == 1  # the best validation epoch's file, no test-time save
