"""`trainlab eval --report` on a real run: the options reach torchrun's workers, a folder holding files is refused
before anything loads, and the report equals the logged metrics and scikit-learn's numbers, on 1 and 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sklearn import metrics as sk

from trainlab.commands.cli import build_parser, main
from trainlab.commands.evaluate import parse_args, worker_arguments
from trainlab.reports import REPORT_FILES

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"


def run_trainlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120, check=False)


def test_workers_get_the_report_options():
    args = build_parser().parse_args(["eval", "c.yaml", "--checkpoint", "run", "--nproc", "2", "--report", "rep",
                                      "--overwrite"])
    worker = parse_args(worker_arguments(args))
    assert (worker.report, worker.overwrite, worker.split) == ("rep", True, "test")


def test_eval_refuses_a_report_dir_with_files_before_loading(tmp_path, capsys):
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "old.json").write_text("{}")
    code = main(["eval", str(tmp_path / "no-such-config.yaml"), "--checkpoint", "nowhere", "--report",
                 str(tmp_path / "rep")])
    assert code == 2
    expected = (f"trainlab: error: --report {tmp_path / 'rep'} already holds files; choose a new or empty folder, "
                "or pass --overwrite to replace the report's files there")
    assert capsys.readouterr().err.strip().splitlines() == [expected]


def test_eval_report_of_a_trained_run(tmp_path):
    for name in ("blobs.yaml", "toy_components.py"):
        shutil.copy(ENGINE_TESTS / name, tmp_path / name)
    with open(tmp_path / "blobs.yaml", "a") as config:
        config.write("  TEST: {NAME: BlobsDataset, SIZE: 11, SEED: 2}\n")
    train = run_trainlab("train", "blobs.yaml", "TRAINER.OUTPUT_DIR", "out", cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    run_dir = next((tmp_path / "out" / "trainlab").iterdir())
    evaluate = run_trainlab("eval", "blobs.yaml", "--checkpoint", str(run_dir), "--split", "val", "--report", "rep",
                            cwd=tmp_path)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert "evaluation report: rep" in evaluate.stderr
    metrics = json.loads(evaluate.stdout)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert sorted(path.name for path in (tmp_path / "rep").iterdir()) == sorted(REPORT_FILES)
    assert report["num_samples"] == metrics["val/num_samples"] == 13
    assert report["accuracy"] == pytest.approx(metrics["val/accuracy"], abs=1e-12)
    assert report["macro_avg"]["f1"] == pytest.approx(metrics["val/f1"], abs=1e-12)  # BlobsTrainer: macro F1
    assert report["classes"][1]["roc_auc"] == pytest.approx(metrics["val/roc_auc"], abs=1e-12)

    state = evaluated_state(tmp_path / "blobs.yaml", run_dir)  # the same evaluation in this process
    p, y = state["probabilities"].numpy(), state["labels"].numpy()
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, p.argmax(1)), abs=1e-12)
    assert report["macro_avg"]["f1"] == pytest.approx(sk.f1_score(y, p.argmax(1), average="macro"), abs=1e-12)
    assert report["confusion_matrix"] == sk.confusion_matrix(y, p.argmax(1), labels=[0, 1]).tolist()
    assert report["classes"][1]["average_precision"] == pytest.approx(sk.average_precision_score(y, p[:, 1]))

    again = run_trainlab("eval", "blobs.yaml", "--checkpoint", str(run_dir), "--split", "val", "--report", "rep",
                         cwd=tmp_path)
    assert again.returncode == 2 and "--report rep already holds files" in again.stderr
    shards = run_trainlab("eval", "blobs.yaml", "--checkpoint", str(run_dir), "--split", "val", "--report", "rep",
                          "--overwrite", "--nproc", "2", cwd=tmp_path)  # torchrun workers; rank 0 writes
    assert shards.returncode == 0, shards.stderr[-2000:]
    assert shards.stderr.count("evaluation report: rep") == 1
    assert json.loads((tmp_path / "rep" / "report.json").read_text()) == report


def evaluated_state(config: Path, run_dir: Path) -> dict[str, torch.Tensor]:
    """The gathered metric state of the run's best checkpoint on its val split, evaluated here."""
    from trainlab.commands.evaluate import inference_trainer
    from trainlab.components import build_datasets
    from trainlab.validation import prepare_config

    cfg = prepare_config(str(config), [])
    trainer = inference_trainer(cfg, str(run_dir))
    trainer.evaluate_dataset(build_datasets(cfg, trainer.model, splits=("VAL",))["val"], prefix="val")
    return trainer.last_eval_state
