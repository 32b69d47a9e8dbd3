"""Loop options a user sets in TRAINER: seeding, accumulation, precision, schedulers; and the run's files."""

from __future__ import annotations

import pytest
from engine_helpers import evaluations, read_metrics, step_losses

NO_DROPOUT = ("MODEL.DROPOUT", "0.0")


def test_same_config_gives_the_same_losses_and_writes_every_run_file(blobs):
    first, first_dir = blobs()
    second, second_dir = blobs()
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert step_losses(first_dir) == step_losses(second_dir)
    for name in ("config.yaml", "train.log", "metrics.jsonl", "best_model.safetensors", "checkpoints/latest"):
        assert (first_dir / name).is_file(), name
    assert list((first_dir / "tb").glob("events.out.tfevents.*"))


def test_gradient_accumulation_equals_the_larger_batch(blobs):
    whole, whole_dir = blobs(*NO_DROPOUT, "TRAINER.BATCH_SIZE_TRAIN", "8")
    accumulated, acc_dir = blobs(*NO_DROPOUT, "TRAINER.BATCH_SIZE_TRAIN", "4", "TRAINER.GRAD_ACCUM_STEPS", "2")
    assert whole.returncode == 0 and accumulated.returncode == 0, whole.stderr + accumulated.stderr
    expected, got = step_losses(whole_dir), step_losses(acc_dir)
    assert sorted(got) == sorted(expected) == list(range(1, 17))
    assert all(abs(got[s] - expected[s]) < 1e-5 for s in expected)


def test_bf16_autocast_trains_on_cpu(blobs):
    proc, run_dir = blobs("TRAINER.PRECISION", "bf16")
    assert proc.returncode == 0, proc.stderr
    assert "bf16" in (run_dir / "train.log").read_text()
    assert evaluations(run_dir)[-1]["val/accuracy"] > 0.7


def test_fp16_without_cuda_is_a_clear_config_error(blobs):
    proc, _ = blobs("TRAINER.PRECISION", "fp16", "TRAINER.DEVICE", "cpu")
    assert proc.returncode == 2
    assert "fp16 needs a CUDA device" in proc.stderr and "Traceback" not in proc.stderr


# StepLR halves after every epoch; ReduceLROnPlateau takes the first evaluation as its reference and halves
# after the next one, which a learning rate of 1e-6 cannot improve by its relative threshold.
@pytest.mark.parametrize("scheduler, kwargs, factors", [("StepLR", "{step_size: 1, gamma: 0.5}", (0.5, 0.5)),
                                                        ("ReduceLROnPlateau", "{patience: 0, factor: 0.5}", (1.0, 0.5))])
def test_epoch_and_plateau_schedulers_step_once_per_epoch(blobs, scheduler, kwargs, factors):
    proc, run_dir = blobs("TRAINER.SCHEDULER_CLASS", scheduler, "TRAINER.SCHEDULER_KWARGS", kwargs,
                          "TRAINER.OPTIMIZER_KWARGS", "{lr: 1.0e-6}", "TRAINER.EPOCHS", "3",
                          "TRAINER.MONITOR", "val/loss", "TRAINER.MONITOR_MODE", "min")
    assert proc.returncode == 0, proc.stderr
    lr_by_epoch = {m["epoch"]: m["train/lr"] for m in read_metrics(run_dir) if "train/lr" in m}
    assert lr_by_epoch[0] == pytest.approx(1e-6)
    assert lr_by_epoch[1] == pytest.approx(lr_by_epoch[0] * factors[0])
    assert lr_by_epoch[2] == pytest.approx(lr_by_epoch[1] * factors[1])
