"""Causal-LM fine-tuning of a tiny random Llama with PEFT LoRA, from JSON Lines, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import transformers

from trainlab.datasets.causal_lm import CausalLMDataset

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [("what colour is the sky", "the sky is blue"), ("what colour is grass", "grass is green"),
         ("what colour is snow", "snow is white"), ("what colour is coal", "coal is black")]


@pytest.fixture(scope="module")
def qa_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qa")
    for split, repeats in (("train", 8), ("validation", 2)):
        rows = [{"prompt": f"question: {q}? answer:", "response": f" {a}"} for q, a in PAIRS * repeats]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_prompt_tokens_are_masked_and_batches_padded(tiny_llama, qa_data):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama)
    dataset = CausalLMDataset(qa_data, "validation", tokenizer=tokenizer, max_length=32, prompt_field="prompt")
    item = dataset[0]
    prompt_len = len(tokenizer("question: what colour is the sky? answer:", add_special_tokens=False)["input_ids"])
    assert item["labels"][:prompt_len] == [-100] * prompt_len
    assert item["labels"][prompt_len:] == item["input_ids"][prompt_len:]
    assert item["input_ids"][-1] == tokenizer.eos_token_id
    batch = dataset.collate_fn([dataset[0], dataset[1]])
    longest = max(len(dataset[0]["input_ids"]), len(dataset[1]["input_ids"]))
    assert batch["input_ids"].shape == (2, longest)
    assert ((batch["attention_mask"] == 0) <= (batch["labels"] == -100)).all()


def test_lora_fine_tune_lowers_validation_perplexity(tiny_llama, qa_data, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "trainlab", "train", str(ROOT / "configs" / "llm" / "causal_lm_lora.yaml"),
            "MODEL.PRETRAINED", str(tiny_llama), "MODEL.PEFT.R", "4", "MODEL.PEFT.LORA_ALPHA", "8",
            "TRAINER.OUTPUT_DIR", str(out), "TRAINER.EPOCHS", "2", "TRAINER.OPTIMIZER_KWARGS.lr", "0.02",
            "TRAINER.WARMUP_RATIO", "0.0", "TRAINER.LOG_EVERY_STEPS", "1",
            "DATASET.TRAIN.ROOT", str(qa_data), "DATASET.VAL.ROOT", str(qa_data),
            "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.MAX_LENGTH", "32"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (out / "causal_lm").iterdir()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if "val/perplexity" in m]
    assert len(evals) == 2 and evals[1]["val/perplexity"] < evals[0]["val/perplexity"], evals
    assert evals[0]["val/num_samples"] == 8
    log = (run_dir / "train.log").read_text()
    trainable, total = [int(x.replace(",", "")) for x in log.split("trainable parameters ")[1].split(" (")[0].split(" / ")]
    assert trainable < total / 10  # only the LoRA adapters train
    assert (run_dir / "model" / "config.json").is_file()  # merged model, Hugging Face layout
    merged = transformers.AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert not any("lora" in name for name, _ in merged.named_parameters())
