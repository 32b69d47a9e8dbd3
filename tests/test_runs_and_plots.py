"""`trainlab runs` and `trainlab plot` on real runs: two finished ones with different learning rates, one killed
mid-run, one whose trainer raised, and an old one without status.json."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from trainlab.errors import ConfigError
from trainlab.plots import build_figure, plot_run, plot_runs, smooth, thin
from trainlab.runs import RunInfo, find_runs

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"
PROJECT = "blobs"
COMMON = ["TRAINER.PROJECT_NAME", PROJECT, "TRAINER.EPOCHS", "3", "DATASET.TEST.NAME", "BlobsDataset",
          "DATASET.TEST.SIZE", "10", "DATASET.TEST.SEED", "2"]
RUNS = {  # run directory name -> overrides
    "lr-0.01": [],
    "lr-0.05": ["TRAINER.OPTIMIZER_KWARGS.lr", "0.05"],
    "failed": ["TRAINER.NAME", "FailingTrainer", "TRAINER.FAIL_RANK", "0", "TRAINER.FAIL_STEP", "3"],
    "killed": ["TRAINER.EPOCHS", "1000"],
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def trainlab(command: str, *args: str) -> list[str]:
    """The command line of `trainlab COMMAND ARGS`."""
    return [sys.executable, "-m", "trainlab", command, *args]


def run_command(command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(trainlab(command, *args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60,
                          check=False)


def start_training(folder: Path, name: str) -> subprocess.Popen:
    run_dir = f"work_dirs/{PROJECT}/{name}"
    command = [sys.executable, "-m", "trainlab", "train", "blobs.yaml", *COMMON, *RUNS[name], "TRAINER.RUN_DIR", run_dir]
    with open(folder / f"{name}.log", "w") as log:  # a file, not a pipe: a chatty run never blocks on it
        return subprocess.Popen(command, cwd=folder, env=ENV, stdout=log, stderr=subprocess.STDOUT)


def kill_once_logging(proc: subprocess.Popen, run_dir: Path, limit_s: float = 90.0) -> None:
    """SIGKILL the run as soon as it has a status file and a metrics line: it cannot write its end."""
    deadline = time.monotonic() + limit_s
    metrics = run_dir / "metrics.jsonl"
    while not ((run_dir / "status.json").exists() and metrics.exists() and metrics.read_text().count("\n")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder with work_dirs/blobs/{lr-0.01, lr-0.05, failed, killed, legacy}; trained side by side."""
    folder = tmp_path_factory.mktemp("runs")
    for name in ("blobs.yaml", "toy_components.py"):
        shutil.copy(ENGINE_TESTS / name, folder / name)
    procs = {name: start_training(folder, name) for name in RUNS}
    kill_once_logging(procs.pop("killed"), folder / "work_dirs" / PROJECT / "killed")
    for name, proc in procs.items():
        assert proc.wait(timeout=120) == (1 if name == "failed" else 0), (folder / f"{name}.log").read_text()[-2000:]
    legacy = folder / "work_dirs" / PROJECT / "legacy"  # a run from before status.json
    shutil.copytree(folder / "work_dirs" / PROJECT / "lr-0.01", legacy)
    (legacy / "status.json").unlink()
    return folder


@pytest.fixture(scope="module")
def runs(workspace) -> dict[str, RunInfo]:
    return {run.run_dir.name: run for run in find_runs(workspace / "work_dirs")}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def best_logged(run_dir: Path, metric: str, mode: str) -> tuple[float | None, int | None]:
    """The best value of ``metric`` in metrics.jsonl and the first step that reached it."""
    points = [(r["step"], r[metric]) for r in records(run_dir) if isinstance(r.get(metric), (int, float))]
    if not points:
        return None, None
    best = (min if mode == "min" else max)(value for _, value in points)
    return best, next(step for step, value in points if value == best)


def test_each_run_has_its_status(runs):
    assert {name: run.status for name, run in runs.items()} == {
        "lr-0.01": "finished", "lr-0.05": "finished", "failed": "failed", "killed": "interrupted", "legacy": "unknown"}
    assert "deliberate failure on rank 0 at step 3" in runs["failed"].error
    assert all(run.project == PROJECT for run in runs.values())


def test_progress_best_and_test_metrics_match_what_the_runs_logged(runs):
    for name, run in runs.items():
        logged = records(run.run_dir)
        assert run.monitor == "val/accuracy"
        assert (run.best, run.best_step) == best_logged(run.run_dir, "val/accuracy", "max"), name
        assert run.steps == max(record["step"] for record in logged), name
    finished = runs["lr-0.01"]
    assert (finished.steps, finished.epochs) == (24, 3)
    assert finished.test["test/accuracy"] == records(finished.run_dir)[-1]["test/accuracy"]
    assert runs["legacy"].test == finished.test and runs["legacy"].best == finished.best
    assert runs["failed"].best is None and runs["failed"].steps == 3
    assert finished.duration_s > 0 and finished.samples_per_s > 0


def test_differences_name_the_config_keys_that_differ(runs, workspace):
    assert runs["lr-0.01"].differences["TRAINER.OPTIMIZER_KWARGS.lr"] == 0.01
    assert runs["lr-0.05"].differences["TRAINER.OPTIMIZER_KWARGS.lr"] == 0.05
    assert runs["killed"].differences["TRAINER.EPOCHS"] == 1000
    assert runs["failed"].differences["TRAINER.NAME"] == "FailingTrainer"
    assert not any("RUN_DIR" in key for run in runs.values() for key in run.differences)
    every_key = {run.run_dir.name: run for run in find_runs(workspace / "work_dirs", all_keys=True)}
    assert every_key["killed"].differences["TRAINER.RUN_DIR"] == f"work_dirs/{PROJECT}/killed"


def test_a_project_or_a_single_run_directory_can_be_listed(workspace):
    project = workspace / "work_dirs" / PROJECT
    assert len(find_runs(project)) == 5
    (single,) = find_runs(project / "lr-0.05")
    assert single.status == "finished" and single.differences == {}


def test_runs_prints_one_line_per_run_in_start_order(workspace, runs):
    proc = run_command("runs", cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split()[:3] == ["project", "run", "status"] and "config" in header
    started = sorted(runs.values(), key=lambda run: run.started)
    assert [line.split()[1] for line in lines] == [f"work_dirs/{PROJECT}/{run.run_dir.name}" for run in started]
    by_name = {line.split()[1].rsplit("/", 1)[1]: line for line in lines}
    assert "lr=0.05" in by_name["lr-0.05"] and "lr=0.01" in by_name["lr-0.01"]
    assert by_name["killed"].split()[2] == "interrupted" and "EPOCHS=1000" in by_name["killed"]


def test_runs_json_is_a_list_for_scripts(workspace, runs):
    proc = run_command("runs", "work_dirs", "--json", cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    listed = {Path(entry["run_dir"]).name: entry for entry in json.loads(proc.stdout)}
    assert {name: entry["status"] for name, entry in listed.items()} == {n: r.status for n, r in runs.items()}
    assert listed["lr-0.05"]["best"] == runs["lr-0.05"].best
    assert listed["lr-0.05"]["differences"]["TRAINER.OPTIMIZER_KWARGS.lr"] == 0.05


@pytest.mark.parametrize("best, metric, mode", [("val/loss", "val/loss", "min"), ("val/loss:max", "val/loss", "max"),
                                                ("val/f1", "val/f1", "max")])
def test_best_sorts_by_a_metric_best_first(workspace, runs, best, metric, mode):
    proc = run_command("runs", "--json", "--best", best, cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    order = [Path(entry["run_dir"]).name for entry in json.loads(proc.stdout)]
    values = {name: best_logged(run.run_dir, metric, mode)[0] for name, run in runs.items()}
    by_start = [run.run_dir.name for run in sorted(runs.values(), key=lambda run: run.started)]
    measured = sorted((name for name in by_start if values[name] is not None), key=values.get, reverse=mode == "max")
    assert order == measured + [name for name in by_start if values[name] is None]
    text = run_command("runs", "--best", best, cwd=workspace).stdout.splitlines()
    assert [line.split()[1].rsplit("/", 1)[1] for line in text[1:]] == order


def test_best_by_a_metric_no_run_logged_is_a_user_error(workspace):
    proc = run_command("runs", "--best", "val/f2", cwd=workspace)
    assert proc.returncode == 2 and proc.stderr == (
        "trainlab: error: --best val/f2: no run logged val/f2; name a metric of metrics.jsonl, e.g. val/accuracy\n")


def test_nothing_found_is_one_line_and_a_missing_path_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_command("runs", "empty", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "no runs in empty\n")
    proc = run_command("runs", cwd=tmp_path)  # the default: work_dirs here
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("trainlab: error: work_dirs does not exist") and proc.stderr.count("\n") == 1
    with pytest.raises(ConfigError, match="--best"):
        from trainlab.commands.runs import parse_best

        parse_best("val/loss:")


def test_plot_has_one_line_per_metric_and_run(runs):
    run_dirs = [runs[name].run_dir for name in ("lr-0.01", "lr-0.05", "killed")]
    figure = build_figure(run_dirs)
    panels = {axes.get_title(): axes for axes in figure.axes}
    assert list(panels)[:2] == ["train/loss", "train/lr"]
    assert {"val/accuracy", "val/f1", "val/loss"} <= set(panels) and "val/num_samples" not in panels
    for title, axes in panels.items():  # the killed run may have died before its first evaluation
        logged = sum(any(title in record for record in records(run_dir)) for run_dir in run_dirs)
        assert len(axes.get_lines()) == logged * (2 if title == "train/loss" else 1), title  # raw and smoothed loss
    assert len(panels["train/loss"].get_lines()) == 2 * len(run_dirs)
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["lr-0.01", "lr-0.05", "killed"]
    chosen = build_figure(run_dirs, ["val/f1", "train/loss"])
    assert [axes.get_title() for axes in chosen.axes] == ["val/f1", "train/loss"]


def test_plot_command_writes_a_png_and_keeps_an_existing_one(workspace, runs):
    run_dirs = [str(runs[name].run_dir) for name in ("lr-0.01", "lr-0.05")]
    proc = run_command("plot", *run_dirs, "--metrics", "train/loss,val/f1", cwd=workspace)
    assert (proc.returncode, proc.stdout) == (0, "wrote plot.png\n"), proc.stderr
    assert_png(workspace / "plot.png")
    again = run_command("plot", *run_dirs, cwd=workspace)
    assert again.returncode == 2 and "plot.png already exists" in again.stderr
    assert run_command("plot", *run_dirs, "--overwrite", cwd=workspace).returncode == 0
    unknown = run_command("plot", run_dirs[0], "--metrics", "val/f2", "--output", "x.png", cwd=workspace)
    assert unknown.returncode == 2 and "did you mean 'val/f1'" in unknown.stderr
    assert not (workspace / "x.png").exists()


def test_plot_run_writes_the_runs_own_picture(runs):
    for name in ("lr-0.01", "failed", "killed"):
        (path,) = plot_run(runs[name].run_dir)
        assert path == runs[name].run_dir / "plots" / "metrics.png"
        assert_png(path)


def test_plot_run_copes_with_a_single_point_nan_and_no_validation(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert plot_run(run_dir) == []  # nothing logged: nothing drawn
    lines = [{"step": 1, "epoch": 0, "train/loss": "nan", "train/lr": 0.1},
             {"step": 2, "epoch": 0, "train/loss": 0.5, "train/lr": 0.1}]
    (run_dir / "metrics.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n{\"step\": 3, \"trai")
    (path,) = plot_run(run_dir)
    assert_png(path)
    assert [axes.get_title() for axes in build_figure([run_dir]).axes] == ["train/loss", "train/lr"]
    (path,) = plot_runs([run_dir], ["train/lr"], output=tmp_path / "one.png")
    assert_png(path)


def test_smoothing_skips_nan_and_long_series_are_thinned_to_their_last_point():
    smoothed = smooth([1.0, math.nan, 3.0], weight=0.5)
    assert smoothed[0] == 1.0 and math.isnan(smoothed[1]) and smoothed[2] == pytest.approx((0.25 + 1.5) / 0.75)
    assert thin(list(range(10)), limit=3) == [0, 4, 8, 9] and thin([1, 2], limit=3) == [1, 2]


def assert_png(path: Path) -> None:
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
