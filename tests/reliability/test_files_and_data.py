"""Mistakes with files and data, made on the command line as a user makes them.

Each is refused with one line that names the culprit, exit code 2 and no traceback, and leaves every file the
user had byte-identical: work that exists is never overwritten, wrong input is never silently accepted,
damaged files never reach a library unguarded.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import assert_user_error, run_module, run_trainlab, snapshot

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "tests" / "engine" / "blobs.yaml"  # a tiny MLP on two Gaussian blobs: a run takes seconds
SO_CONFIG = REPO / "configs" / "stackoverflow" / "minilm_full.yaml"
SAMPLE = REPO / "examples" / "stackoverflow" / "train-sample.csv"


def so_overrides(data: Path, out: Path) -> list[str]:
    overrides = ["TRAINER.OUTPUT_DIR", str(out)]
    for split in ("TRAIN", "VAL", "TEST"):
        overrides += [f"DATASET.{split}.ROOT", str(data), f"DATASET.{split}.MAX_LENGTH", "32"]
    return overrides


def write_questions(path: Path, rows: pd.DataFrame) -> Path:
    rows.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def blobs_run(tmp_path_factory) -> Path:
    """A finished one-epoch run: checkpoints/, best_model.safetensors, metrics.jsonl, config.yaml, train.log."""
    work = tmp_path_factory.mktemp("blobs")
    proc = run_trainlab(["train", BLOBS, "TRAINER.EPOCHS", "1", "TRAINER.RUN_DIR", work / "run"], cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "run"


@pytest.fixture(scope="module")
def so_data(tmp_path_factory) -> Path:
    """60 questions of the shipped sample, preprocessed (48 / 6 / 6)."""
    from trainlab.preprocess.stackoverflow import preprocess

    folder = tmp_path_factory.mktemp("stackoverflow")
    preprocess(write_questions(folder / "questions.csv", pd.read_csv(SAMPLE, nrows=60)), folder / "data")
    return folder / "data"


# ---------------------------------------------------------------- work that exists is never overwritten
@pytest.mark.parametrize("holds", ["a run", "other files"])
def test_a_new_run_never_writes_into_a_folder_that_holds_something(blobs_run, tmp_path, holds):
    folder = blobs_run
    if holds == "other files":
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "notes.txt").write_text("keep me")
    before = snapshot(folder)
    proc = run_trainlab(["train", BLOBS, "TRAINER.EPOCHS", "1", "TRAINER.RUN_DIR", folder], cwd=tmp_path)
    line = assert_user_error(proc, ["TRAINER.RUN_DIR", str(folder)], before, snapshot(folder))
    assert ("--resume" in line) == (holds == "a run")


def test_an_empty_existing_run_dir_is_used(tmp_path):
    (tmp_path / "run").mkdir()
    proc = run_trainlab(["train", BLOBS, "TRAINER.EPOCHS", "1", "TRAINER.RUN_DIR", tmp_path / "run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()


def test_a_resume_that_fails_keeps_the_run_and_its_config(blobs_run, tmp_path):
    before = snapshot(blobs_run)
    proc = run_trainlab(["train", BLOBS, "TRAINER.RUN_DIR", blobs_run, "MODEL.HIDDEN", "32", "--resume"], cwd=tmp_path)
    # train.log may record the attempt; config.yaml, checkpoints, metrics and the model stay as they were
    assert_user_error(proc, ["net.0.weight", "[16, 8]"], before, snapshot(blobs_run), ignore={"train.log"})


def test_a_resume_with_changed_settings_keeps_the_earlier_config(blobs_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(blobs_run, run)
    first = (run / "config.yaml").read_text()
    proc = run_trainlab(["train", BLOBS, "TRAINER.EPOCHS", "2", "TRAINER.RUN_DIR", run, "--resume"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [kept] = run.glob("config-*.yaml")
    assert kept.read_text() == first and "EPOCHS: 1" in first
    assert "EPOCHS: 2" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("case", ["output is the input", "output exists", "output folder missing"])
def test_predict_never_replaces_a_file_and_checks_its_output_before_loading(blobs_run, tmp_path, case):
    questions = write_questions(tmp_path / "new.csv", pd.read_csv(SAMPLE, nrows=5).drop(columns=["OpenStatus"]))
    (tmp_path / "preds.csv").write_text("PostId,prob_open,prob_closed,prediction\n")  # an earlier result
    output = {"output is the input": questions, "output exists": tmp_path / "preds.csv",
              "output folder missing": tmp_path / "missing" / "preds.csv"}[case]
    before = snapshot(tmp_path)
    # The command line is checked before the config's dataset and model (the toy config's cannot predict).
    proc = run_trainlab(["predict", BLOBS, "--checkpoint", blobs_run, "--input", questions, "--output", output],
                        cwd=tmp_path)
    assert_user_error(proc, ["--output", str(output)], before, snapshot(tmp_path))


def test_preprocessing_never_replaces_an_earlier_output(so_data, tmp_path):
    before = snapshot(so_data)
    questions = write_questions(tmp_path / "more.csv", pd.read_csv(SAMPLE, nrows=80))
    proc = run_trainlab(["preprocess", "stackoverflow", "--input", questions, "--output", so_data, "--seed", "1"],
                        cwd=tmp_path)
    line = assert_user_error(proc, str(so_data), before, snapshot(so_data))
    assert "--overwrite" in line


def test_the_sample_generator_never_replaces_a_csv(tmp_path):
    real = tmp_path / "train-sample.csv"  # the name of Kaggle's real file
    shutil.copy(SAMPLE, real)
    before = snapshot(tmp_path)
    proc = run_module("trainlab.preprocess.sample_data", ["--rows", "10", "--output", real], cwd=tmp_path)
    assert_user_error(proc, str(real), before, snapshot(tmp_path))


# ---------------------------------------------------------------- wrong input is never silently accepted
def test_duplicate_question_ids_are_dropped_and_counted(tmp_path):
    rows = pd.read_csv(SAMPLE, nrows=50, dtype={"PostId": str})
    again = rows.head(5).assign(OpenStatus="off topic")  # the same questions, labelled differently
    source = write_questions(tmp_path / "questions.csv", pd.concat([rows, again]))
    proc = run_trainlab(["preprocess", "stackoverflow", "--input", source, "--output", tmp_path / "data"],
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "read 55 rows, kept 50, dropped 5 (duplicate_id 5)" in proc.stdout
    from datasets import load_from_disk

    ids = [i for split in ("train", "validation", "test") for i in load_from_disk(str(tmp_path / "data" / split))["post_id"]]
    assert sorted(ids) == sorted(rows["PostId"])  # each question once, in one split, with its first label
    assert json.loads((tmp_path / "data" / "preprocess.json").read_text())["dropped"]["duplicate_id"] == 5


@pytest.mark.parametrize("where", ["no run yet", "a run without a checkpoint"])
def test_resume_with_nothing_to_resume_names_where_it_looked(tmp_path, where):
    if where == "no run yet":
        looked, args = tmp_path / "out" / "trainlab", ["TRAINER.OUTPUT_DIR", tmp_path / "out"]
    else:  # a run that died before its first checkpoint
        looked = tmp_path / "run"
        looked.mkdir()
        (looked / "train.log").write_text("2026-01-01 00:00:00 INFO run directory ...\n")
        args = ["TRAINER.RUN_DIR", looked]
    before = snapshot(tmp_path)
    proc = run_trainlab(["train", BLOBS, *args, "--resume"], cwd=tmp_path)
    line = assert_user_error(proc, ["TRAINER.RESUME", str(looked)], before, snapshot(tmp_path))
    assert not (tmp_path / "out").exists() and "without --resume" in line


# ---------------------------------------------------------------- damaged files never reach a library unguarded
@pytest.mark.parametrize("damage", ["truncated file", "random bytes", "checkpoint in a run"])
def test_eval_of_damaged_weights_names_the_file(blobs_run, tmp_path, damage):
    good = (blobs_run / "best_model.safetensors").read_bytes()
    bad = tmp_path / "model.safetensors"
    checkpoint = bad
    if damage == "truncated file":
        bad.write_bytes(good[: len(good) // 2])
    elif damage == "random bytes":
        bad.write_bytes(random.Random(0).randbytes(len(good)))
    else:  # same size, so the checkpoint still counts as complete
        checkpoint = tmp_path / "run"
        shutil.copytree(blobs_run, checkpoint)
        bad = next((checkpoint / "checkpoints").glob("step-*/model.safetensors"))
        bad.write_bytes(random.Random(0).randbytes(bad.stat().st_size))
    before = snapshot(tmp_path)
    proc = run_trainlab(["eval", BLOBS, "--checkpoint", checkpoint, "--split", "val"], cwd=tmp_path)
    assert_user_error(proc, str(bad), before, snapshot(tmp_path))


@pytest.mark.parametrize("damage", ["no weights", "truncated weights"])
def test_a_pretrained_model_folder_without_usable_weights(minilm_path, so_data, tmp_path, damage):
    model = tmp_path / "minilm"
    shutil.copytree(minilm_path, model, ignore=shutil.ignore_patterns("*.safetensors"))
    if damage == "truncated weights":
        (model / "model.safetensors").write_bytes((Path(minilm_path) / "model.safetensors").read_bytes()[:4096])
    before = snapshot(tmp_path)
    proc = run_trainlab(["train", SO_CONFIG, *so_overrides(so_data, tmp_path / "out"), "MODEL.PRETRAINED", model],
                        cwd=tmp_path)
    culprit = "no weights (*.safetensors / pytorch_model.bin)" if damage == "no weights" else "model.safetensors"
    assert_user_error(proc, [str(model), culprit], before, snapshot(tmp_path))


@pytest.mark.parametrize("command", ["train", "eval"])
def test_an_empty_split_folder_is_named_before_the_model_loads(so_data, tmp_path, command):
    data = tmp_path / "data"
    shutil.copytree(so_data, data)
    shutil.rmtree(data / "validation")
    (data / "validation").mkdir()
    args = [command, SO_CONFIG, *so_overrides(data, tmp_path / "out")]
    if command == "eval":
        args += ["--split", "val", "--checkpoint", tmp_path / "run"]  # not there: the data is checked first
    before = snapshot(tmp_path)
    proc = run_trainlab(args, cwd=tmp_path)
    assert_user_error(proc, ["DATASET.VAL", str(data / "validation")], before, snapshot(tmp_path))


def test_predict_on_rows_none_of_which_is_usable_gives_the_drop_counts(so_data, tmp_path, minilm_path):
    from safetensors.torch import save_model

    from trainlab.models.hf_wrapper import TransformersModelWrapper

    weights = tmp_path / "model.safetensors"  # the configured model, as a run would have saved it
    save_model(TransformersModelWrapper(minilm_path, num_labels=2), str(weights))
    rows = pd.read_csv(SAMPLE, nrows=4).drop(columns=["OpenStatus"])
    rows["BodyMarkdown"] = ["", " ", "", "a body"]
    rows.loc[3, "PostCreationDate"] = "yesterday"
    questions = write_questions(tmp_path / "new.csv", rows)
    before = snapshot(tmp_path)
    proc = run_trainlab(["predict", SO_CONFIG, *so_overrides(so_data, tmp_path / "out"), "--checkpoint", weights,
                         "--input", questions, "--output", tmp_path / "preds.csv"], cwd=tmp_path)
    assert_user_error(proc, [str(questions), "empty_body 3", "bad_date 1"], before, snapshot(tmp_path))
    assert not (tmp_path / "preds.csv").exists()


def test_preprocessing_where_every_row_is_dropped_gives_the_counts(tmp_path):
    rows = pd.read_csv(SAMPLE, nrows=5)
    rows["Title"] = ["", "", "ok", "ok", "ok"]
    rows["OwnerCreationDate"] = "not a date"
    source = write_questions(tmp_path / "questions.csv", rows)
    before = snapshot(tmp_path)
    proc = run_trainlab(["preprocess", "stackoverflow", "--input", source, "--output", tmp_path / "data"],
                        cwd=tmp_path)
    assert_user_error(proc, [str(source), "0 usable rows of 5", "empty_title 2", "bad_date 3"], before,
                      snapshot(tmp_path))
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- messages name the culprit
def test_eval_with_a_model_of_another_shape_names_the_tensor_and_both_shapes(blobs_run, tmp_path):
    before = snapshot(blobs_run)
    proc = run_trainlab(["eval", BLOBS, "MODEL.HIDDEN", "32", "--checkpoint", blobs_run, "--split", "val"],
                        cwd=tmp_path)
    assert_user_error(proc, "net.0.weight: [16, 8] in the checkpoint, [32, 8] in the model", before,
                      snapshot(blobs_run))


def test_predictions_name_their_id_column_after_the_dataset():
    from types import SimpleNamespace

    from trainlab.commands.predict import row_ids

    assert row_ids(SimpleNamespace(row_ids=["a", "b"], id_column="ticket"), 2) == ("ticket", ["a", "b"])
    assert row_ids(SimpleNamespace(row_ids=[7]), 1) == ("id", [7])
    assert row_ids(SimpleNamespace(post_ids=["9"]), 1) == ("PostId", ["9"])
    assert row_ids(SimpleNamespace(), 3) == ("row", [0, 1, 2])
