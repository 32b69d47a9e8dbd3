"""The `trainlab` command as a user types it: real processes, exit codes, and what they print."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from trainlab.config import load_config
from trainlab.registries import ALL_REGISTRIES

CONSOLE_SCRIPT = Path(sys.executable).with_name("trainlab")


def trainlab(*args: str, cwd: Path, script: bool = False) -> subprocess.CompletedProcess:
    command = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "trainlab"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def assert_user_error(proc: subprocess.CompletedProcess, *expected_lines: str) -> None:
    """Exit code 2, no traceback, and exactly the expected `trainlab: error:` message on stderr."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"trainlab: error: {expected_lines[0]}", *expected_lines[1:]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: their own dataset file, their own package of models, and a config using both."""
    write(
        tmp_path / "components" / "notes_dataset.py",
        """
        from trainlab.registries import DATASETS

        @DATASETS.register_module()
        class NotesDataset:
            def __init__(self, root: str, split: str = "train", max_length: int = 64):
                self.root, self.split, self.max_length = root, split, max_length
    """,
    )
    write(tmp_path / "my_project" / "__init__.py", "")
    write(
        tmp_path / "my_project" / "models.py",
        """
        from trainlab.registries import MODELS

        @MODELS.register_module()
        class BagOfWords:
            def __init__(self, vocab_size: int = 100, num_labels: int = 2):
                self.vocab_size, self.num_labels = vocab_size, num_labels
    """,
    )
    write(
        tmp_path / "configs" / "notes.yaml",
        """
        CUSTOM_IMPORTS: [../components/notes_dataset.py, my_project.models]
        MODEL:
          NAME: BagOfWords
          VOCAB_SIZE: 500
        TRAINER:
          EPOCHS: 2
        DATASET:
          TRAIN: {NAME: NotesDataset, ROOT: data/notes, MAX_LENGTH: 32}
    """,
    )
    return tmp_path


def test_import_trainlab_loads_no_heavy_library(tmp_path):
    code = (
        "import sys, trainlab, trainlab.builder, trainlab.config, trainlab.commands.cli\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_missing_config_file_is_one_line_and_exit_code_2(tmp_path):
    proc = trainlab("config", "configs/missing.yaml", cwd=tmp_path)
    assert_user_error(
        proc,
        f"config file not found: configs/missing.yaml — check the path (relative paths start at {tmp_path})",
    )


def test_debug_adds_the_traceback_before_or_after_the_command(tmp_path):
    for args in (["--debug", "config", "missing.yaml"], ["config", "missing.yaml", "--debug"]):
        proc = trainlab(*args, cwd=tmp_path)
        assert proc.returncode == 2
        assert (
            "Traceback (most recent call last)" in proc.stderr
            and "trainlab.errors.ConfigError" in proc.stderr
        )
        assert proc.stderr.splitlines()[-1].startswith("trainlab: error: config file not found: missing.yaml")


def test_unknown_keys_and_bad_overrides_name_the_culprit(tmp_path):
    config = write(tmp_path / "run.yaml", "DATASET:\n  TRIAN:\n    NAME: StackOverflowDataset\n")
    assert_user_error(
        trainlab("config", "run.yaml", cwd=tmp_path),
        "Unknown key DATASET.TRIAN in run.yaml — did you mean DATASET.TRAIN?",
    )
    config.write_text("TRAINER:\n  EPOCHS: 2\n")
    assert_user_error(
        trainlab("config", "run.yaml", "TRAINER.EPOCHS=three", cwd=tmp_path),
        "TRAINER.EPOCHS in the command-line overrides must be int, got str 'three'",
    )
    assert_user_error(
        trainlab("config", "run.yaml", "TRAINER.SEED", "1", "TRAINER.EPOCHS", cwd=tmp_path),
        "override 'TRAINER.EPOCHS' has no value — write KEY VALUE (TRAINER.EPOCHS 3) or KEY=VALUE",
    )
    assert_user_error(
        trainlab("config", "run.yaml", "DATASET.TRIAN.NAME", "StackOverflowDataset", cwd=tmp_path),
        "Unknown key DATASET.TRIAN.NAME in the command-line overrides — did you mean DATASET.TRAIN?",
    )


def test_an_unknown_model_name_and_a_misspelled_trainer_key_are_reported_together(tmp_path):
    write(
        tmp_path / "run.yaml",
        """
        MODEL:
          NAME: BertForSequenceClasification
        TRAINER:
          EPOHCS: 3
    """,
    )
    proc = trainlab("train", "run.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    model_line, trainer_line = proc.stderr.splitlines()
    assert model_line.startswith(
        "trainlab: error: MODEL.NAME: 'BertForSequenceClasification' is not in the models registry — "
        "did you mean 'BertForSequenceClassification'? Known names: BertForSequenceClassification, "
        "TransformersModelWrapper."
    )
    assert trainer_line.startswith("Unknown key TRAINER.EPOHCS in run.yaml — did you mean TRAINER.EPOCHS?")
    assert not (tmp_path / "work_dirs").exists()  # nothing started


def test_config_prints_yaml_that_loads_back_equal_with_the_users_own_modules(project):
    proc = trainlab(
        "config", "configs/notes.yaml", "TRAINER.EPOCHS", "5", "DATASET.TRAIN.MAX_LENGTH=48", cwd=project
    )
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed["CUSTOM_IMPORTS"] == [
        str(project / "components" / "notes_dataset.py"),
        "my_project.models",
    ]
    assert printed["MODEL"] == {"NAME": "BagOfWords", "PRETRAINED": "", "VOCAB_SIZE": 500}
    assert printed["TRAINER"]["EPOCHS"] == 5 and printed["DATASET"]["TRAIN"]["MAX_LENGTH"] == 48
    resolved = write(project / "resolved.yaml", proc.stdout)
    expected = load_config(
        project / "configs" / "notes.yaml", ["TRAINER.EPOCHS", "5", "DATASET.TRAIN.MAX_LENGTH=48"]
    )
    assert load_config(resolved) == expected


def test_a_typo_in_the_users_dataset_keys_is_caught_against_its_signature(project):
    proc = trainlab("config", "configs/notes.yaml", "DATASET.TRAIN.MAX_LENGHT", "48", cwd=project)
    assert_user_error(
        proc,
        "Unknown key DATASET.TRAIN.MAX_LENGHT in the command-line overrides — "
        "did you mean DATASET.TRAIN.MAX_LENGTH? "
        "(NotesDataset accepts: MAX_LENGTH, ROOT, SPLIT)",
    )


def test_list_shows_every_registry_with_names_and_modules(tmp_path):
    proc = trainlab("list", cwd=tmp_path, script=True)
    assert proc.returncode == 0, proc.stderr
    headers = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert headers == list(ALL_REGISTRIES)
    rows = {tuple(line.split()) for line in proc.stdout.splitlines() if line.startswith(" ")}
    assert ("BertForSequenceClassification", "trainlab.models.bert") in rows
    assert ("StackOverflowDataset", "trainlab.datasets.stackoverflow") in rows
    assert ("BERTTrainer", "trainlab.trainers.classification") in rows
    assert ("AdamW", "torch.optim.adamw") in rows and ("CrossEntropyLoss", "torch.nn.modules.loss") in rows
    assert "Traceback" not in proc.stderr


def test_list_one_registry_with_a_module_given_by_import(project):
    proc = trainlab("list", "models", "--import", "my_project.models", cwd=project)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "models (3)"
    assert [tuple(line.split()) for line in lines[1:]] == [
        ("BagOfWords", "my_project.models"),
        ("BertForSequenceClassification", "trainlab.models.bert"),
        ("TransformersModelWrapper", "trainlab.models.hf_wrapper"),
    ]


def test_list_and_import_mistakes_are_user_errors(project):
    assert_user_error(
        trainlab("list", "modles", cwd=project),
        "no registry 'modles' — did you mean 'models'?; registries: " + ", ".join(ALL_REGISTRIES),
    )
    proc = trainlab("list", "models", "--import", "my_project.modles", cwd=project)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("trainlab: error: CUSTOM_IMPORTS: cannot import 'my_project.modles'")


def test_preprocess_subcommand_runs_the_stackoverflow_preprocessing(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "examples" / "stackoverflow" / "train-sample.csv"
    proc = trainlab("preprocess", "stackoverflow", "--input", str(sample), "--output", "data", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "read 600 rows, kept 600" in proc.stdout
    assert (tmp_path / "data" / "preprocess.json").is_file()
    unknown = trainlab("preprocess", "kaggle", cwd=tmp_path)
    assert_user_error(unknown, "name what to preprocess ('kaggle' is not one): trainlab preprocess {stackoverflow} "
                      "--input CSV --output DIR")
    for argv in (["preprocess", "--input", "x.csv"], ["--debug", "preprocess", "--input", "x.csv"]):
        missing = trainlab(*argv, cwd=tmp_path)
        assert missing.returncode == 2
        assert "name what to preprocess: trainlab preprocess {stackoverflow}" in missing.stderr.splitlines()[-1]
    debug = trainlab("--debug", "preprocess", "stackoverflow", "--input", "absent.csv", "--output", "d", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_argparse_errors_are_one_line_with_the_closest_option(tmp_path):
    typo = trainlab("train", "x.yaml", "--nprc", "2", cwd=tmp_path)
    assert_user_error(typo, "unrecognized arguments: --nprc 2 — did you mean '--nproc'? (see trainlab train --help)")
    bad = trainlab("train", "x.yaml", "--nproc", "two", cwd=tmp_path)
    assert_user_error(bad, "argument --nproc: invalid int value: 'two' — give a whole number (see trainlab train --help)")


def test_resume_does_not_swallow_a_config_key(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("MODEL: {NAME: Nope}\n")
    proc = trainlab("train", str(config), "--resume", "TRAINER.MAX_STEPS", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "override" not in proc.stderr and "MODEL.NAME" in proc.stderr
    elsewhere = trainlab("train", str(config), "--resume", "nowhere", cwd=tmp_path)
    assert_user_error(elsewhere, "--resume nowhere: no such checkpoint or run directory — give an existing path, "
                      "'auto' (the latest run), or write --resume=auto when the next word is not its value")


def test_gpus_on_a_machine_without_cuda_says_it_trains_on_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    config = tmp_path / "x.yaml"
    config.write_text("MODEL: {NAME: Nope}\n")
    proc = trainlab("train", str(config), "--gpus", "0", cwd=tmp_path)
    assert proc.stderr.splitlines()[0] == ("trainlab: note: --gpus 0 but this machine has no CUDA device; "
                                           "training on CPU with 1 process(es)")


def test_a_missing_model_and_a_malformed_chat_row_are_reported_together_before_anything_loads(tmp_path):
    chat_recipe = Path(__file__).resolve().parents[1] / "configs" / "llm" / "chat_lora.yaml"
    good = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'
    write(tmp_path / "data" / "train.jsonl", good + '\n{"messages": [{"role": "bot", "content": "hi"}]}\n')
    write(tmp_path / "data" / "validation.jsonl", good + "\n")
    proc = trainlab("train", str(chat_recipe), "MODEL.PRETRAINED", str(tmp_path / "no-model-here"),
                    "DATASET.TRAIN.ROOT", "data", "DATASET.VAL.ROOT", "data", "TRAINER.OUTPUT_DIR", "out", cwd=tmp_path)
    # the config checks read the rows without a tokenizer and the model's files without loading them: one report
    assert_user_error(proc, f"MODEL.PRETRAINED = '{tmp_path / 'no-model-here'}' is not a directory. Point it at a "
                            "folder holding config.json and the weights (the output of save_pretrained), or use a hub "
                            "id that is already downloaded.",
                      "DATASET.TRAIN: data/train.jsonl line 2: 'messages' message 1 has role 'bot'; "
                      "expected one of system, user, assistant")
    assert not (tmp_path / "out").exists()
