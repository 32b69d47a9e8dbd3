"""Memory estimates of a tiny Llama against what a real AdamW step and a real FSDP2 run hold, and the commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from llm_fixtures import write_tiny_llama

from trainlab.commands.estimate import AvailableMemory, suggest
from trainlab.components import build_model, trainer_settings
from trainlab.estimate import estimate_memory, plan_memory
from trainlab.model_shape import read_model_shape
from trainlab.optim import build_optimizer
from trainlab.validation import prepare_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "llm" / "causal_lm_lora.yaml"  # PEFT LoRA r=16 on q, k, v, o; batch 8
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TOLERANCE = 0.25

# Writes what each rank of a real FSDP2 run (every decoder layer, then the root; gloo) holds after one AdamW step
# to rank<N>.json (a file each: the ranks' prints could interleave).
SHARD_SCRIPT = """
import gc, json, pathlib, sys
import torch, torch.distributed as dist, transformers
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

dist.init_process_group("gloo")
model = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])
mesh = init_device_mesh("cpu", (dist.get_world_size(),))
for layer in model.model.layers:
    fully_shard(layer, mesh=mesh)
fully_shard(model, mesh=mesh)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
ids = torch.randint(0, model.config.vocab_size, (2, 16))
model(input_ids=ids, labels=ids).loss.backward()
optimizer.step()
local = [t.to_local() if hasattr(t, "to_local") else t for t in
         [*model.parameters(), *(p.grad for p in model.parameters()),
          *(v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0)]]
out = pathlib.Path(sys.argv[2]) / f"rank{dist.get_rank()}.json"
out.write_text(json.dumps({"bytes": sum(t.numel() * t.element_size() for t in local)}))
del model, optimizer, local  # sharded tensors die while the group lives (a gloo thread holding one aborts the exit)
gc.collect()
dist.barrier()
dist.destroy_process_group()
"""


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny_llama64"), hidden_size=64)


@pytest.fixture(scope="session")
def qa_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qa")
    rows = [{"prompt": f"question {i}?", "response": f" answer {i}"} for i in range(8)]
    for split in ("train", "validation"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def load(tiny_llama: Path, *overrides: str):
    return prepare_config(str(CONFIG), ["MODEL.PRETRAINED", str(tiny_llama), "DATASET.TRAIN.MAX_LENGTH", "32", *overrides])


def counts(model: torch.nn.Module) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def within(estimated: int, measured: int) -> bool:
    return abs(estimated - measured) <= TOLERANCE * measured


def test_parameter_counts_equal_the_real_models(tiny_llama):
    real = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama)
    total, _ = counts(real)
    full = read_model_shape(load(tiny_llama, "MODEL.PEFT", "null"))
    assert (full.architecture, full.params, full.trainable) == ("LlamaForCausalLM", total, total)
    assert (full.layers, full.hidden, full.kv_dim, full.gated_mlp) == (2, 64, 32, True)
    frozen = read_model_shape(load(tiny_llama, "MODEL.PEFT", "null", "MODEL.FREEZE", "[model.embed_tokens]"))
    assert frozen.trainable == total - real.model.embed_tokens.weight.numel()

    targets, r = ["q_proj", "v_proj"], 4
    analytic = sum(r * (m.in_features + m.out_features) for name, m in real.named_modules() if name.endswith(tuple(targets)))
    own = read_model_shape(load(tiny_llama, "MODEL.PEFT", "null", "MODEL.LORA.R", str(r),
                                "MODEL.LORA.TARGET_MODULES", "[q_proj, v_proj]"))
    via_peft = read_model_shape(load(tiny_llama, "MODEL.PEFT.R", str(r), "MODEL.PEFT.TARGET_MODULES", "[q_proj, v_proj]"))
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(real, LoraConfig(r=r, target_modules=targets, task_type="CAUSAL_LM"))
    assert own.trainable == via_peft.trainable == counts(peft_model)[1] == analytic
    assert own.params == via_peft.params == counts(peft_model)[0] == total + analytic


@pytest.mark.parametrize("adapter", [["MODEL.PEFT", "null"], ["MODEL.PEFT.R", "4"]], ids=["full", "peft-lora"])
def test_single_and_ddp_estimates_match_one_real_adamw_step(tiny_llama, adapter):
    cfg = load(tiny_llama, "TRAINER.BATCH_SIZE_TRAIN", "2", *adapter)
    plan = plan_memory(cfg, world_size=1)
    model = build_model(cfg)  # the real TransformersModelWrapper, weights loaded
    settings = trainer_settings(cfg)
    optimizer = build_optimizer(model, settings.optimizer_class, settings.optimizer_kwargs)
    ids = torch.randint(0, 1000, (2, 32))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    params = [p for p in model.parameters()]
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    measured = sum(t.numel() * t.element_size() for t in [*params, *(p.grad for p in params if p.grad is not None), *state])
    for strategy in ("single", "ddp"):
        estimate = estimate_memory(plan.model, plan.workload, strategy, 2 if strategy == "ddp" else 1)
        assert within(estimate.params + estimate.grads + estimate.optimizer, measured), (strategy, estimate, measured)


def test_fsdp_estimate_matches_the_local_shards_of_two_gloo_processes(tiny_llama, tmp_path):
    estimate = plan_memory(load(tiny_llama, "MODEL.PEFT", "null"), world_size=2).estimates["fsdp"]
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend",
                           "c10d", "--rdzv-endpoint", "localhost:0", str(script), str(tiny_llama), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    for rank in ranks:
        assert within(estimate.params + estimate.grads + estimate.optimizer, rank["bytes"]), (estimate, rank)


def test_activations_follow_precision_checkpointing_and_batch(tiny_llama):
    fp32 = ("TRAINER.PRECISION", "fp32")
    base = plan_memory(load(tiny_llama, *fp32), world_size=1).estimates["single"]
    bf16 = plan_memory(load(tiny_llama, "TRAINER.PRECISION", "bf16"), world_size=1).estimates["single"]
    checkpointed = plan_memory(load(tiny_llama, *fp32, "MODEL.GRADIENT_CHECKPOINTING", "true"), 1).estimates["single"]
    doubled = plan_memory(load(tiny_llama, *fp32, "TRAINER.BATCH_SIZE_TRAIN", "16"), world_size=1).estimates["single"]
    assert bf16.activations < base.activations and checkpointed.activations < base.activations
    assert doubled.activations == 2 * base.activations
    weights_bf16 = plan_memory(load(tiny_llama, "MODEL.PEFT", "null", "MODEL.TORCH_DTYPE", "bfloat16"), 1)
    full = plan_memory(load(tiny_llama, "MODEL.PEFT", "null"), 1)
    assert 2 * weights_bf16.estimates["single"].params == full.estimates["single"].params


def test_the_suggestion_is_the_least_intrusive_change_that_fits(tiny_llama):
    plan = plan_memory(load(tiny_llama, "MODEL.PEFT", "null"), world_size=4)
    ddp, fsdp, offload = (plan.estimates[name].device_total for name in ("ddp", "fsdp", "fsdp+offload"))
    assert ddp > fsdp > offload

    def gpu(size: int) -> AvailableMemory:
        return AvailableMemory("cuda", size, 2**40, "a test GPU")

    assert not gpu((ddp + fsdp) // 2).fits(plan.estimates["ddp"])
    assert suggest(plan, gpu((ddp + fsdp) // 2)).startswith("use TRAINER.STRATEGY fsdp (")
    assert suggest(plan, gpu((fsdp + offload) // 2)) == "use TRAINER.STRATEGY fsdp with TRAINER.FSDP_CPU_OFFLOAD true"
    activations = plan.estimates["ddp"].activations  # batch 8: room for 2.5 samples fits a batch of 2
    assert suggest(plan, gpu(ddp - activations + activations * 5 // 16)) == (
        "set TRAINER.BATCH_SIZE_TRAIN 2 (GRAD_ACCUM_STEPS 4 keeps the global batch)")
    assert suggest(plan, gpu(10**6)).startswith("no single change fits")


def trainlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=ENV, check=False)


def test_estimate_command_prints_one_row_per_strategy(tiny_llama, tmp_path):
    proc = trainlab("estimate", str(CONFIG), "MODEL.PRETRAINED", str(tiny_llama), "--nproc", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("LlamaForCausalLM: ") and "2 processes" in lines[0]
    assert lines[1].startswith("available per process: ")
    assert lines[3].split() == ["strategy", "params", "grads", "optimizer", "buffers", "activations", "device", "host"]
    rows = {line.split()[0]: line for line in lines[4:7]}
    assert list(rows) == ["ddp", "fsdp", "fsdp+offload"] and rows["ddp"].startswith("ddp *")
    assert all(" fits (" in rows[name] for name in ("ddp", "fsdp", "fsdp+offload"))

    unknown = trainlab("estimate", str(ROOT / "tests" / "engine" / "blobs.yaml"), cwd=tmp_path)
    expected = ("trainlab: error: parameters unknown for this model: MLPClassifier has no Hugging Face config "
                "(the estimate reads hidden size, layers and heads from one)")
    assert unknown.returncode == 2 and unknown.stderr.splitlines() == [expected]


def test_train_refuses_a_run_that_cannot_fit_and_force_starts_it(tiny_llama, qa_data, tmp_path):
    args = ["train", str(CONFIG), "MODEL.PRETRAINED", str(tiny_llama), "TRAINER.OUTPUT_DIR", str(tmp_path / "out"),
            "TRAINER.BATCH_SIZE_TRAIN", "100000", "TRAINER.EPOCHS", "1", "TRAINER.MAX_STEPS", "1",
            "DATASET.TRAIN.ROOT", str(qa_data), "DATASET.VAL.ROOT", str(qa_data),
            "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.MAX_LENGTH", "32"]
    refused = trainlab(*args, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr[-3000:]
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("trainlab: error: memory per process (single, 1 process): ~"), line
    assert "does NOT fit" in line and "set TRAINER.BATCH_SIZE_TRAIN" in line and "--force" in line
    assert not (tmp_path / "out").exists()

    forced = trainlab(*args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "training anyway (--force)" in forced.stderr
    [run_dir] = (tmp_path / "out" / "causal_lm").iterdir()
    assert (run_dir / "metrics.jsonl").is_file()
