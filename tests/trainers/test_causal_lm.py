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
from trainlab.datasets.prompts import encode_prompt

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
    prompt_len = len(encode_prompt(tokenizer, "question: what colour is the sky? answer:"))  # BOS + prompt
    assert item["input_ids"][0] == tokenizer.bos_token_id
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


TOPICS = [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"),
          ("sun", "yellow"), ("night", "dark"), ("milk", "white")]


def conversation(index: int) -> dict:
    """A system message and 1–3 user/assistant turns of varied length (so batching changes padding)."""
    thing, colour = TOPICS[index % len(TOPICS)]
    messages = [{"role": "system", "content": "answer with one short sentence."}]
    for turn in range(1 + index % 3):
        messages += [{"role": "user", "content": f"what colour is the {thing}?" + " please" * (index % 4 + turn)},
                     {"role": "assistant", "content": f"the {thing} is {colour}." + " really" * turn}]
    return {"messages": messages}


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("chat")
    for split, count in (("train", 24), ("validation", 7)):
        offset = 0 if split == "train" else 100
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(conversation(offset + i)) + "\n" for i in range(count)))
    return folder


def trainlab(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)


@pytest.fixture(scope="module")
def chat_run(tiny_llama, chat_data, tmp_path_factory) -> Path:
    """The chat recipe as shipped, made tiny: step-0 evaluation, generations, LoRA adapter."""
    out = tmp_path_factory.mktemp("chat_run")
    proc = trainlab("train", str(ROOT / "configs" / "llm" / "chat_lora.yaml"), "MODEL.PRETRAINED", str(tiny_llama),
                    "MODEL.PEFT.R", "4", "TRAINER.OUTPUT_DIR", str(out), "TRAINER.EPOCHS", "2",
                    "TRAINER.BATCH_SIZE_TRAIN", "4", "TRAINER.LOG_EVERY_STEPS", "4", "TRAINER.OPTIMIZER_KWARGS.lr", "0.01",
                    "TRAINER.GENERATE_SAMPLES", "2", "TRAINER.MAX_NEW_TOKENS", "6",
                    "DATASET.TRAIN.ROOT", str(chat_data), "DATASET.VAL.ROOT", str(chat_data),
                    "DATASET.TRAIN.MAX_LENGTH", "96", "DATASET.VAL.MAX_LENGTH", "96", cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (out / "chat_lora").iterdir()
    return run_dir


def test_chat_run_evaluates_at_step_zero_and_writes_generations_at_each_evaluation(chat_run):
    metrics = [json.loads(line) for line in (chat_run / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if "val/perplexity" in m]
    assert [m["step"] for m in evals] == [0, 6, 12]
    assert evals[-1]["val/loss"] < evals[0]["val/loss"]
    for m in evals:  # val/loss is the token-level mean: exactly log(perplexity)
        assert m["val/loss"] == pytest.approx(m["val/token_loss"], rel=1e-6)
    generations = [json.loads(line) for line in (chat_run / "generations.jsonl").read_text().splitlines()]
    assert [g["step"] for g in generations] == [0, 0, 6, 6, 12, 12]
    assert all(g["prompt"][-1]["role"] == "user" and g["reference"] for g in generations)
    assert (chat_run / "adapter" / "adapter_config.json").is_file()


def test_log_lines_show_the_current_window(chat_run):
    """6 steps per epoch, a log every 4: lines at steps 4 and 6 of each epoch, each with its own window's loss."""
    metrics = [json.loads(line) for line in (chat_run / "metrics.jsonl").read_text().splitlines()]
    logged = {m["step"]: m["train/loss"] for m in metrics if "train/loss" in m}
    assert sorted(logged) == [4, 6, 8, 12]
    lines = [line for line in (chat_run / "train.log").read_text().splitlines() if " train " in line and "loss=" in line]
    shown = [float(line.split("loss=")[1].split()[0]) for line in lines]
    assert shown == pytest.approx([logged[s] for s in (4, 6, 8, 12)], abs=1e-4)


@pytest.mark.parametrize("nproc", [1, 2])
def test_validation_loss_is_the_same_for_any_batch_size_and_process_count(chat_run, tiny_llama, nproc):
    """The token-level loss and perplexity of the same weights at eval batch sizes 1 and 4, on 1 and 2 processes."""
    config = chat_run / "config.yaml"
    results = []
    for batch_size in (1, 4):
        proc = trainlab("eval", str(config), "--checkpoint", str(chat_run), "--split", "val", "--nproc", str(nproc),
                        "TRAINER.BATCH_SIZE_EVAL", str(batch_size), cwd=chat_run.parent)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads(proc.stdout[proc.stdout.index("{"):]))
    run_metrics = [json.loads(line) for line in (chat_run / "metrics.jsonl").read_text().splitlines()]
    best = min((m for m in run_metrics if "val/loss" in m and m["step"] > 0), key=lambda m: m["val/loss"])
    for result in results:
        assert result["val/num_samples"] == 7
        assert result["val/loss"] == pytest.approx(best["val/loss"], abs=1e-5)
        assert result["val/perplexity"] == pytest.approx(best["val/perplexity"], rel=1e-5)


def test_packed_training_keeps_examples_apart_and_evaluates_like_unpacked(chat_run, tiny_llama, chat_data, tmp_path):
    proc = trainlab("train", str(ROOT / "configs" / "llm" / "chat_lora.yaml"), "MODEL.PRETRAINED", str(tiny_llama),
                    "MODEL.PEFT.R", "4", "TRAINER.OUTPUT_DIR", str(tmp_path), "TRAINER.MAX_STEPS", "2",
                    "TRAINER.GENERATE_SAMPLES", "0", "TRAINER.EVAL_BEFORE_TRAIN", "false",
                    "DATASET.TRAIN.ROOT", str(chat_data), "DATASET.VAL.ROOT", str(chat_data),
                    "DATASET.TRAIN.MAX_LENGTH", "96", "DATASET.VAL.MAX_LENGTH", "96", "DATASET.TRAIN.PACKING", "true",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (tmp_path / "chat_lora").iterdir()
    log = (run_dir / "train.log").read_text()
    assert "packed 24 examples into" in log and "packed examples are kept apart" in log
    # the same weights score the same on packed and unpacked validation rows
    scores = []
    for packing in ("false", "true"):
        proc = trainlab("eval", str(chat_run / "config.yaml"), "--checkpoint", str(chat_run), "--split", "val",
                        "DATASET.VAL.PACKING", packing, "DATASET.VAL.MAX_LENGTH", "200", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        scores.append(json.loads(proc.stdout[proc.stdout.index("{"):]))
    assert scores[1]["val/loss"] == pytest.approx(scores[0]["val/loss"], abs=1e-5)
    assert scores[1]["val/num_tokens"] == scores[0]["val/num_tokens"]
