"""TRAINER.LOGGERS: MLflow and W&B runs hold what metrics.jsonl holds; a tracker that cannot start never costs the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import BLOBS_CONFIG, evaluations, read_metrics, run_trainlab


def last_values(run_dir: Path) -> dict[str, float]:
    values: dict[str, float] = {}
    for record in read_metrics(run_dir):
        values.update({k: v for k, v in record.items() if k not in ("step", "epoch") and isinstance(v, (int, float))})
    return values


def test_mlflow_run_holds_the_metrics_and_the_config(blobs, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    proc, run_dir = blobs("TRAINER.LOGGERS", "[jsonl, mlflow]", "TRAINER.OPTIMIZER_KWARGS.lr", "0.02")
    assert proc.returncode == 0, proc.stderr[-2000:]
    link = json.loads((run_dir / "mlflow_run.json").read_text())
    assert link["tracking_uri"] == (tmp_path / "out" / "mlruns").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(link["tracking_uri"])
    runs = mlflow.search_runs(experiment_names=["trainlab"], output_format="list")
    assert [r.info.run_id for r in runs] == [link["run_id"]]
    [run] = runs
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    expected = last_values(run_dir)
    assert set(run.data.metrics) == set(expected)
    for name, value in expected.items():
        assert run.data.metrics[name] == pytest.approx(value, rel=1e-9), name
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val/accuracy")
    assert [(m.step, m.value) for m in history] == [(e["step"], e["val/accuracy"]) for e in evaluations(run_dir)]
    assert run.data.params["TRAINER.OPTIMIZER_KWARGS.lr"] == "0.02"
    assert run.data.params["MODEL.NAME"] == "MLPClassifier"


def test_wandb_offline_run_is_written_in_the_run_directory(blobs):
    pytest.importorskip("wandb")
    proc, run_dir = blobs("TRAINER.LOGGERS", "[jsonl, wandb]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    [offline] = (run_dir / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb")), list(offline.iterdir())


def test_a_tracker_that_cannot_start_is_one_warning_and_the_run_finishes(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where MLflow wants a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{blocked}/mlruns")
    proc = run_trainlab(["train", str(BLOBS_CONFIG), "TRAINER.OUTPUT_DIR", str(tmp_path / "out"),
                         "TRAINER.LOGGERS", "[jsonl, mlflow]"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in (proc.stderr + proc.stdout).splitlines() if "logger mlflow did not start" in line]
    assert len(warnings) == 1, proc.stderr[-2000:]
    [run_dir] = (tmp_path / "out" / "trainlab").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    assert evaluations(run_dir)


def test_unknown_logger_is_refused_before_the_run_starts(blobs, tmp_path):
    proc, run_dir = blobs("TRAINER.LOGGERS", "[jsonl, mlfow]")
    assert proc.returncode == 2 and run_dir is None
    assert "did you mean 'mlflow'" in proc.stderr and "Traceback" not in proc.stderr
