"""Short real fine-tunes of MiniLM on Stack Overflow questions, as a user runs them, then eval and predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from datasets import load_from_disk

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "stackoverflow"


def trainlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def short_run(data: Path, out: Path) -> list[str]:
    """160 training questions, 64 tokens, batch 16 (global): 10 steps per epoch, 2 epochs."""
    overrides = ["TRAINER.OUTPUT_DIR", str(out), "TRAINER.EPOCHS", "2", "TRAINER.LOG_EVERY_STEPS", "5",
                 "TRAINER.WARMUP_RATIO", "0.0", "TRAINER.BATCH_SIZE_EVAL", "16"]
    for split in ("TRAIN", "VAL", "TEST"):
        overrides += [f"DATASET.{split}.ROOT", str(data), f"DATASET.{split}.MAX_LENGTH", "64"]
    return overrides


def read_run(out: Path) -> tuple[Path, list[dict]]:
    [run_dir] = (out / "stackoverflow").iterdir()
    return run_dir, [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "config, nproc, lr",
    [("minilm_full", 1, "1.0e-4"), ("minilm_full", 2, "1.0e-4"), ("minilm_lora", 1, "2.0e-3"),
     ("minilm_lora", 2, "2.0e-3"), ("own_bert_tabular", 1, "1.0e-4")],
)
def test_validation_loss_goes_down(so_data, tmp_path, config, nproc, lr):
    batch = str(16 // nproc)
    args = ["train", str(CONFIGS / f"{config}.yaml"), *short_run(so_data["data"], tmp_path / "out"),
            "TRAINER.BATCH_SIZE_TRAIN", batch, "TRAINER.OPTIMIZER_KWARGS.lr", lr, "--nproc", str(nproc)]
    proc = trainlab(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir, metrics = read_run(tmp_path / "out")
    val = [m["val/loss"] for m in metrics if "val/loss" in m]
    assert len(val) == 2 and val[1] < val[0], val
    [test] = [m for m in metrics if "test/accuracy" in m]
    assert test["test/num_samples"] == 20
    if config == "minilm_lora":
        assert (run_dir / "adapter" / "trainlab_adapter.safetensors").is_file()
        assert "trainable parameters" in (run_dir / "train.log").read_text()
    if config == "minilm_lora" and nproc == 1:  # eval adds the trainer's LoRA layers before loading weights
        evaluated = trainlab("eval", str(CONFIGS / f"{config}.yaml"), *args[2:-2], "--checkpoint", str(run_dir),
                             cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        scores = json.loads(evaluated.stdout[evaluated.stdout.index("{"):])
        assert scores["test/accuracy"] == pytest.approx(test["test/accuracy"], abs=1e-6)
    assert (run_dir / "model" / "config.json").is_file() or config == "own_bert_tabular"


@pytest.fixture(scope="module")
def trained_full(so_data, tmp_path_factory) -> tuple[Path, list[str], dict]:
    out = tmp_path_factory.mktemp("full")
    overrides = short_run(so_data["data"], out / "runs")
    proc = trainlab("train", str(CONFIGS / "minilm_full.yaml"), *overrides, "TRAINER.EPOCHS", "1", cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir, metrics = read_run(out / "runs")
    [test] = [m for m in metrics if "test/accuracy" in m]
    return run_dir, overrides, test


def test_eval_on_the_saved_checkpoint_gives_the_logged_numbers(trained_full, tmp_path):
    run_dir, overrides, logged = trained_full
    proc = trainlab("eval", str(CONFIGS / "minilm_full.yaml"), *overrides, "--checkpoint", str(run_dir),
                    "--split", "test", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads(proc.stdout[proc.stdout.index("{"):])
    for key in ("test/accuracy", "test/f1", "test/roc_auc", "test/num_samples"):
        assert evaluated[key] == pytest.approx(logged[key], abs=1e-6), key


def test_predict_scores_new_questions_like_the_logged_test_accuracy(trained_full, so_data, tmp_path):
    run_dir, overrides, logged = trained_full
    test_ids = set(load_from_disk(str(so_data["data"]))["test"]["post_id"])
    questions = pd.read_csv(so_data["csv"], dtype={"PostId": str})
    questions = questions[questions["PostId"].isin(test_ids)]
    new_csv = tmp_path / "new.csv"
    questions.drop(columns=["OpenStatus"]).to_csv(new_csv, index=False)

    proc = trainlab("predict", str(CONFIGS / "minilm_full.yaml"), *overrides, "--checkpoint", str(run_dir),
                    "--input", str(new_csv), "--output", str(tmp_path / "preds.csv"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    preds = pd.read_csv(tmp_path / "preds.csv", dtype={"PostId": str})
    assert len(preds) == 20
    assert (preds["prob_open"] + preds["prob_closed"]).sub(1).abs().max() < 1e-5
    truth = questions.set_index("PostId")["OpenStatus"].map(lambda s: "open" if s == "open" else "closed")
    accuracy = (preds.set_index("PostId")["prediction"] == truth).mean()
    assert accuracy == pytest.approx(logged["test/accuracy"], abs=1e-9)
