"""Greedy generation from a causal LM, `trainlab generate` and `trainlab eval --nproc`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from trainlab.commands.generate import generate_answers
from trainlab.datasets.prompts import encode_prompt
from trainlab.generation import generate_greedy

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "llm" / "causal_lm_lora.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PAIRS = [("what colour is the sky", "the sky is blue"), ("what colour is grass", "grass is green"),
         ("what colour is snow", "snow is white"), ("what colour is coal", "coal is black")]
CONVERSATION = [{"role": "system", "content": "answer briefly"}, {"role": "user", "content": "what colour is snow?"}]

# Two processes shard the tiny Llama with FSDP and decode the same prompts together; each writes what it got.
SHARDED_SCRIPT = """
import gc, json, sys
import torch
from trainlab.engine import distributed
from trainlab.engine.strategies.fsdp import FSDPStrategy
from trainlab.generation import generate_greedy
from trainlab.models.hf_wrapper import TransformersModelWrapper

llama, out, prompts, eos = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
distributed.init_distributed("cpu")
strategy = FSDPStrategy(torch.device("cpu"))
strategy.setup(TransformersModelWrapper(llama, task="causal-lm"))
tokens = generate_greedy(strategy.module, prompts, 6, eos, synced=True, device=torch.device("cpu"))
with open(f"{out}/rank{distributed.get_rank()}.json", "w") as file:
    json.dump(tokens, file)
del strategy  # sharded tensors die while the group lives: a gloo thread holding one at exit aborts the process
gc.collect()
distributed.barrier()
distributed.cleanup()
"""


def trainlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def llama(tiny_llama) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama)
    return model, transformers.AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture(scope="module")
def lora_run(tiny_llama, tmp_path_factory) -> Path:
    """The run directory of one short PEFT LoRA fine-tune of the tiny Llama on question/answer pairs."""
    folder = tmp_path_factory.mktemp("lora_run")
    for split, repeats in (("train", 4), ("validation", 2)):
        rows = [{"prompt": f"question: {q}? answer:", "response": f" {a}"} for q, a in PAIRS * repeats]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = folder / "run"
    proc = trainlab("train", str(CONFIG), "MODEL.PRETRAINED", str(tiny_llama), "MODEL.PEFT.R", "4",
                    "MODEL.PEFT.LORA_ALPHA", "8", "TRAINER.RUN_DIR", str(run_dir), "TRAINER.EPOCHS", "1",
                    "TRAINER.OPTIMIZER_KWARGS.lr", "0.02", "TRAINER.WARMUP_RATIO", "0.0",
                    "DATASET.TRAIN.ROOT", str(folder), "DATASET.VAL.ROOT", str(folder),
                    "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.MAX_LENGTH", "32", cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def printed_metrics(stdout: str) -> dict[str, float]:
    """The one JSON object `trainlab eval` printed (after rank 0's log lines, if any)."""
    assert stdout.count("{") == 1, stdout
    return json.loads(stdout[stdout.index("{"):])


def until(eos: int, tokens: list[int]) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def argmax_decoding(model: torch.nn.Module, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding the slow way: the whole sequence through the model for every new token, no cache."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_generate_greedy_equals_argmax_decoding_and_stops_at_eos(llama):
    model, tokenizer = llama
    prompts = [[tokenizer.cls_token_id], encode_prompt(tokenizer, "what colour is the sky?"),
               encode_prompt(tokenizer, CONVERSATION, tokenizer.chat_template)]
    assert len({len(p) for p in prompts}) == 3
    model.train()
    generated = generate_greedy(model, prompts, 8, eos_token_id=None)
    assert model.training  # the model's mode is restored
    assert generated == [argmax_decoding(model.eval(), p, 8) for p in prompts]
    stop = generated[1][3]  # as EOS: prompt 1 ends by its 4th token, EOS included; the others where they meet it
    assert generate_greedy(model, prompts, 8, stop) == [until(stop, g) for g in generated]


def test_sharded_processes_generate_what_one_process_does(llama, tiny_llama, tmp_path):
    model, tokenizer = llama
    prompts = [encode_prompt(tokenizer, "what colour is grass?"), [tokenizer.cls_token_id]]
    alone = generate_greedy(model, prompts, 6, eos_token_id=None)
    eos = alone[0][2]  # prompt 0 stops early; every rank goes on to decode prompt 1
    expected = [until(eos, tokens) for tokens in alone]
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend",
                           "c10d", "--rdzv-endpoint", "localhost:0", str(script), str(tiny_llama), str(tmp_path),
                           json.dumps(prompts), str(eos)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)] == [expected, expected]


def test_generate_answers_prompts_and_jsonl_rows(llama, tiny_llama, tmp_path):
    model, tokenizer = llama
    proc = trainlab("generate", str(tiny_llama), "--prompt", "what colour is the sky?", "--prompt", "hello",
                    "--max-new-tokens", "4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("what colour is the sky? → ") and lines[1].startswith("hello → ")

    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "hello"}) + "\n\n"
                                            + json.dumps({"messages": CONVERSATION}) + "\n")
    proc = trainlab("generate", str(tiny_llama), "--input", "prompts.jsonl", "--output", "out.jsonl",
                    "--max-new-tokens", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    prompts = ["hello", CONVERSATION]
    ids = generate_greedy(model, [encode_prompt(tokenizer, p, tokenizer.chat_template) for p in prompts], 5,
                          tokenizer.eos_token_id)
    assert rows == [{"prompt": p, "generation": tokenizer.decode(i, skip_special_tokens=True)}
                    for p, i in zip(prompts, ids)]
    assert proc.stdout.splitlines()[1].startswith("what colour is snow? → ")

    again = trainlab("generate", str(tiny_llama), "--input", "prompts.jsonl", "--output", "out.jsonl", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == ("trainlab: error: --output out.jsonl already exists; choose another file, or pass "
                            "--overwrite to replace it\n")


@pytest.mark.parametrize("row, message", [
    ('{"prompt": "hi"', "not valid JSON"),
    ('{"text": "hi"}', 'expected {"prompt": "text"} or {"messages"'),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
     "the conversation's last turn is 'assistant'; end it with a 'user' turn"),
])
def test_a_bad_input_row_is_named_by_file_and_line(row, message, tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "fine"}\n' + row + "\n")
    proc = trainlab("generate", str(tmp_path), "--input", "prompts.jsonl", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(f"trainlab: error: prompts.jsonl:2: {message}"), proc.stderr


def test_a_directory_without_a_model_is_refused(tmp_path):
    proc = trainlab("generate", str(tmp_path), "--prompt", "hi", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith(f"trainlab: error: {tmp_path}: no model there")
    assert len(proc.stderr.splitlines()) == 1


def test_the_adapter_on_its_base_generates_what_the_merged_model_does(lora_run, tmp_path):
    prompt = "question: what colour is the sky? answer:"
    [merged] = generate_answers(str(lora_run), [prompt], max_new_tokens=6)  # RUN_DIR/model
    proc = trainlab("generate", str(lora_run), "--adapter", "--prompt", prompt, "--max-new-tokens", "6", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{prompt} → {merged}\n"


def test_eval_on_two_processes_reports_the_metrics_of_one_once(lora_run, tmp_path):
    args = ["eval", str(lora_run / "config.yaml"), "--checkpoint", str(lora_run), "--split", "val"]
    one = trainlab(*args, cwd=tmp_path)
    two = trainlab(*args, "--nproc", "2", "--output", "metrics.json", cwd=tmp_path)
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    alone, shared = printed_metrics(one.stdout), printed_metrics(two.stdout)
    assert json.loads((tmp_path / "metrics.json").read_text()) == shared
    assert alone["val/num_samples"] == shared["val/num_samples"] == 8
    for key in ("val/loss", "val/perplexity"):
        assert shared[key] == pytest.approx(alone[key], rel=1e-6, abs=1e-6)
