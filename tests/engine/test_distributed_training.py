"""Real 2-process gloo runs against 1-process runs of the same config."""

from __future__ import annotations

import time

import torch
from engine_helpers import evaluations, step_losses
from safetensors.torch import load_file

NO_DROPOUT = ("MODEL.DROPOUT", "0.0")
DUMP_PARAMS = ("TRAINER.HOOKS", "[{NAME: ParamDumpHook}]")


def test_two_processes_match_one_process_with_the_same_global_batch(blobs):
    one, one_dir = blobs(*NO_DROPOUT, "TRAINER.BATCH_SIZE_TRAIN", "8", *DUMP_PARAMS)
    two, two_dir = blobs(*NO_DROPOUT, "TRAINER.BATCH_SIZE_TRAIN", "4", *DUMP_PARAMS, nproc=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr

    rank0 = load_file(two_dir / "params-rank0.safetensors")
    rank1 = load_file(two_dir / "params-rank1.safetensors")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "DDP ranks diverged"

    losses_one, losses_two = step_losses(one_dir), step_losses(two_dir)
    assert sorted(losses_one) == sorted(losses_two) == list(range(1, 17))
    for step in losses_one:  # same samples per global step; only summation order differs
        assert abs(losses_one[step] - losses_two[step]) < 1e-5, step
    single = load_file(one_dir / "params-rank0.safetensors")
    assert all(torch.allclose(single[k], rank0[k], atol=1e-5) for k in single)


def test_evaluation_counts_each_sample_once_and_equals_one_process(blobs):
    frozen = ("TRAINER.OPTIMIZER_KWARGS", "{lr: 1.0e-30}", "TRAINER.EPOCHS", "1")
    one, one_dir = blobs(*frozen)
    two, two_dir = blobs(*frozen, nproc=2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    [eval_one], [eval_two] = evaluations(one_dir), evaluations(two_dir)
    assert eval_one["val/num_samples"] == eval_two["val/num_samples"] == 13
    for key in ("val/loss", "val/accuracy", "val/f1", "val/precision", "val/recall", "val/roc_auc", "val/log_loss"):
        assert abs(eval_one[key] - eval_two[key]) < 1e-6, key  # float32 sums in other batch groupings


def test_prototype_style_trainer_trains_under_two_processes(blobs):
    proc, run_dir = blobs("TRAINER.NAME", "PrototypeStyleTrainer", "TRAINER.MONITOR", "val/loss",
                          "TRAINER.MONITOR_MODE", "min", nproc=2)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1 val loss" in (run_dir / "train.log").read_text()
    assert (run_dir / "checkpoints" / "best.json").is_file()  # written through save_best_model


def test_a_failing_rank_stops_the_whole_run_promptly(blobs):
    start = time.monotonic()
    proc, _ = blobs("TRAINER.NAME", "FailingTrainer", "TRAINER.FAIL_RANK", "1", "TRAINER.FAIL_STEP", "3",
                    "TRAINER.EPOCHS", "50", nproc=2, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert proc.stderr.count("deliberate failure on rank 1 at step 3") == 1, proc.stderr
