"""FSDP2 on 2 gloo processes against DDP: same losses and weights, sharded memory, exact resume at any world size."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import transformers
from engine_helpers import BLOBS_CONFIG, HERE, read_metrics, run_trainlab, step_losses
from llm_fixtures import write_tiny_llama
from safetensors.torch import load_file

ROOT = HERE.parents[1]
LLAMA_FSDP = ROOT / "configs" / "llm" / "llama_full_fsdp.yaml"
SHARDING = ("CUSTOM_IMPORTS", f"[{HERE / 'toy_components.py'}, {HERE / 'toy_sharding.py'}]")
PAIRS = [("what colour is the sky", "the sky is blue"), ("what colour is grass", "grass is green"),
         ("what colour is snow", "snow is white"), ("what colour is coal", "coal is black")]


@pytest.fixture(scope="module")
def llama_job(tmp_path_factory) -> dict[str, Path]:
    """A tiny random Llama (saved with save_pretrained, loaded through from_pretrained) and question/answer rows."""
    folder = tmp_path_factory.mktemp("llama")
    write_tiny_llama(folder / "model", max_positions=64)
    (folder / "data").mkdir()
    for split, repeats in (("train", 8), ("validation", 2)):
        rows = [{"prompt": f"question: {q}? answer:", "response": f" {a}"} for q, a in PAIRS * repeats]
        (folder / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model": folder / "model", "data": folder / "data"}


def train_llama(job: dict[str, Path], out: Path, *overrides: str, nproc: int = 2) -> tuple[subprocess.CompletedProcess, Path]:
    """The FSDP recipe on the tiny model in fp32, without validation (the export is the final weights)."""
    args = ["train", str(LLAMA_FSDP), "MODEL.PRETRAINED", str(job["model"]), "MODEL.GRADIENT_CHECKPOINTING", "false",
            "TRAINER.PRECISION", "fp32", "TRAINER.OUTPUT_DIR", str(out), "TRAINER.BATCH_SIZE_TRAIN", "2",
            "TRAINER.GRAD_ACCUM_STEPS", "2", "TRAINER.MAX_GRAD_NORM", "0.05", "TRAINER.MAX_STEPS", "5",
            "TRAINER.OPTIMIZER_KWARGS.lr", "0.01", "TRAINER.WARMUP_RATIO", "0.0", "TRAINER.LOG_EVERY_STEPS", "1",
            "DATASET.TRAIN.ROOT", str(job["data"]), "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.NAME", "",
            *overrides, "--nproc", str(nproc)]
    proc = run_trainlab(args, cwd=out.parent, timeout=300)
    runs = sorted((out / "llama_fsdp").iterdir()) if (out / "llama_fsdp").is_dir() else []
    return proc, (runs[-1] if runs else out)


def test_fsdp_trains_like_ddp_in_a_quarter_of_the_memory_per_rank(llama_job, tmp_path):
    bytes_hook = ("TRAINER.HOOKS", "[{NAME: ShardBytesHook}]", *SHARDING)
    fsdp, fsdp_dir = train_llama(llama_job, tmp_path / "fsdp", *bytes_hook)
    ddp, ddp_dir = train_llama(llama_job, tmp_path / "ddp", "TRAINER.STRATEGY", "ddp", *bytes_hook)
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "FSDPStrategy" in (fsdp_dir / "train.log").read_text()

    fsdp_losses, ddp_losses = step_losses(fsdp_dir), step_losses(ddp_dir)
    assert sorted(fsdp_losses) == sorted(ddp_losses) == [1, 2, 3, 4, 5]
    for step in ddp_losses:  # accumulation over 2 micro-batches and clipping of the global norm included
        assert abs(fsdp_losses[step] - ddp_losses[step]) < 1e-5, (step, fsdp_losses, ddp_losses)
    fsdp_weights, ddp_weights = load_file(fsdp_dir / "best_model.safetensors"), load_file(ddp_dir / "best_model.safetensors")
    assert fsdp_weights.keys() == ddp_weights.keys()
    assert all(torch.allclose(fsdp_weights[k], ddp_weights[k], atol=1e-5) for k in ddp_weights)
    assert transformers.AutoModelForCausalLM.from_pretrained(fsdp_dir / "model") is not None  # HF layout, gathered

    for rank in (0, 1):
        fsdp_bytes = json.loads((fsdp_dir / f"bytes-rank{rank}.json").read_text())
        ddp_bytes = json.loads((ddp_dir / f"bytes-rank{rank}.json").read_text())
        assert sum(fsdp_bytes.values()) <= 0.55 * sum(ddp_bytes.values()), (fsdp_bytes, ddp_bytes)


def test_fsdp_resumes_after_kill_9_with_the_same_later_losses(llama_job, tmp_path):
    kill = ("TRAINER.SAVE_EVERY_STEPS", "1", *SHARDING)
    reference, ref_dir = train_llama(llama_job, tmp_path / "ref", *kill)
    killed, run_dir = train_llama(llama_job, tmp_path / "run", *kill, "TRAINER.HOOKS", "[{NAME: KillAtStepHook, STEP: 3}]")
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert killed.returncode != 0
    assert (run_dir / "checkpoints" / "step-00000003" / "sharded").is_dir()  # torch.distributed.checkpoint shards
    resumed, _ = train_llama(llama_job, tmp_path / "run", *kill, "TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = step_losses(ref_dir), step_losses(run_dir)
    assert [s for s in got if s > 3] == [4, 5]
    for step in (4, 5):
        assert abs(got[step] - expected[step]) < 1e-6, (step, got, expected)


def train_blobs(out: Path, *overrides: str, nproc: int) -> tuple[subprocess.CompletedProcess, Path]:
    args = ["train", str(BLOBS_CONFIG), "TRAINER.OUTPUT_DIR", str(out), *SHARDING, "MODEL.DROPOUT", "0.0",
            "TRAINER.NAME", "SampleLogTrainer", "DATASET.TRAIN.NAME", "IndexedBlobsDataset",
            "DATASET.VAL.NAME", "IndexedBlobsDataset", "TRAINER.SAVE_EVERY_STEPS", "1", "TRAINER.GROUP_BY_LENGTH", "false",
            "TRAINER.FSDP_LAYER_CLASSES", "[Sequential]", *overrides]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    proc = run_trainlab(args, cwd=out.parent, timeout=180)
    runs = sorted((out / "trainlab").iterdir()) if (out / "trainlab").is_dir() else []
    return proc, (runs[-1] if runs else out)


def samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for file in sorted(run_dir.glob("samples-rank*.jsonl")) for line in file.read_text().splitlines()]


@pytest.mark.parametrize(("saved", "resumed"), [(("fsdp", 2, 4), ("auto", 1, 8)), (("ddp", 2, 4), ("fsdp", 2, 4)),
                                                (("fsdp", 2, 4), ("fsdp", 3, 3))])
def test_a_checkpoint_resumes_at_another_world_size_and_strategy(tmp_path, saved, resumed):
    (strategy, nproc, batch), (new_strategy, new_nproc, new_batch) = saved, resumed
    same_global_batch = nproc * batch == new_nproc * new_batch  # then the losses must match an uninterrupted run
    killed, run_dir = train_blobs(tmp_path / "run", "TRAINER.STRATEGY", strategy, "TRAINER.BATCH_SIZE_TRAIN", str(batch),
                                  "TRAINER.HOOKS", "[{NAME: KillAtStepHook, STEP: 3}]", nproc=nproc)
    assert killed.returncode != 0
    seen = {i for row in samples(run_dir) if row["epoch"] == 0 and row["step"] <= 3 for i in row["ids"]}
    for file in run_dir.glob("samples-rank*.jsonl"):
        file.unlink()
    resumed_run, _ = train_blobs(tmp_path / "run", "TRAINER.STRATEGY", new_strategy, "TRAINER.BATCH_SIZE_TRAIN", str(new_batch),
                                 "TRAINER.RESUME", "auto", "TRAINER.RUN_DIR", str(run_dir), nproc=new_nproc)
    assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]

    rest = [i for row in samples(run_dir) if row["epoch"] == 0 for i in row["ids"]]
    assert len(seen) == 3 * nproc * batch and not seen & set(rest)  # nothing seen twice ...
    assert seen | set(rest) == set(range(64)) and len(rest) == len(set(rest))  # ... nothing skipped
    if same_global_batch:  # the same samples, the same loss as the run that was never killed
        reference, ref_dir = train_blobs(tmp_path / "ref", "TRAINER.STRATEGY", strategy, "TRAINER.BATCH_SIZE_TRAIN",
                                         str(batch), nproc=nproc)
        assert reference.returncode == 0, reference.stderr[-3000:]
        expected, got = step_losses(ref_dir), step_losses(run_dir)
        assert abs(got[4] - expected[4]) < 1e-5, (got, expected)
    assert (run_dir / "best_model.safetensors").is_file()  # and the run finished: both epochs, the export
    assert len([m for m in read_metrics(run_dir) if "val/loss" in m]) == 2


def test_lora_under_fsdp_exports_an_adapter_and_a_merged_model_with_the_runs_logits(llama_job, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_model

    from trainlab.models.hf_wrapper import TransformersModelWrapper

    out = tmp_path / "lora"
    peft = ["MODEL.PEFT", "{R: 4, ALPHA: 8, DROPOUT: 0.0, TARGET_MODULES: [q_proj, v_proj]}"]
    args = ["train", str(ROOT / "configs" / "llm" / "llama_lora_fsdp.yaml"), "MODEL.PRETRAINED", str(llama_job["model"]),
            *peft, "MODEL.GRADIENT_CHECKPOINTING", "false", "TRAINER.PRECISION", "fp32", "TRAINER.OUTPUT_DIR", str(out),
            "TRAINER.EPOCHS", "1", "TRAINER.OPTIMIZER_KWARGS.lr", "0.01", "TRAINER.WARMUP_RATIO", "0.0",
            "TRAINER.GRAD_ACCUM_STEPS", "1", "TRAINER.BATCH_SIZE_TRAIN", "4",
            "DATASET.TRAIN.ROOT", str(llama_job["data"]), "DATASET.VAL.ROOT", str(llama_job["data"]),
            "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.MAX_LENGTH", "32", "--nproc", "2"]
    proc = run_trainlab(args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = [p for p in out.glob("*/*") if (p / "train.log").is_file()]
    assert "FSDPStrategy" in (run_dir / "train.log").read_text()

    # The run's own model: its exported weights (adapters included) in a fresh single-process wrapper.
    run_model = TransformersModelWrapper(str(llama_job["model"]), task="causal-lm",
                                         peft={"R": 4, "ALPHA": 8, "DROPOUT": 0.0, "TARGET_MODULES": ["q_proj", "v_proj"]})
    load_model(run_model, str(run_dir / "best_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in run_model.state_dict().items() if "lora_B" in k)  # the adapters trained
    inputs = transformers.AutoTokenizer.from_pretrained(llama_job["model"])(["question: what colour is snow? answer:"],
                                                                           return_tensors="pt")
    inputs.pop("token_type_ids", None)
    run_model.eval()
    with torch.no_grad():
        expected = run_model(**inputs).logits

        base = transformers.AutoModelForCausalLM.from_pretrained(llama_job["model"])
        adapter = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
        assert torch.allclose(adapter(**inputs).logits, expected, atol=1e-4)

        merged = transformers.AutoModelForCausalLM.from_pretrained(run_dir / "model").eval()
        assert not any("lora" in name for name, _ in merged.named_parameters())
        assert torch.allclose(merged(**inputs).logits, expected, atol=1e-4)

    # Evaluated sharded, during the run (every sample once), and from the sharded checkpoint in one process.
    [evaluation] = [m for m in read_metrics(run_dir) if "val/loss" in m]
    assert evaluation["val/num_samples"] == 8
    evaluate = run_trainlab(["eval", *args[1:-2], "--checkpoint", str(run_dir), "--split", "val"], cwd=tmp_path)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads(evaluate.stdout[evaluate.stdout.index("{"):])
    assert metrics["val/num_samples"] == 8 and abs(metrics["val/loss"] - evaluation["val/loss"]) < 1e-5

    merge = run_trainlab(["merge-lora", str(run_dir / "adapter"), str(tmp_path / "merged")], cwd=tmp_path)
    assert merge.returncode == 0, merge.stderr
    with torch.no_grad():
        remerged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
        assert torch.allclose(remerged(**inputs).logits, expected, atol=1e-4)


def test_fsdp_loading_needs_less_host_memory_on_every_rank_but_0(llama_job, tmp_path):
    """Ranks other than 0 build the model without weights and receive only their shards."""
    folder = tmp_path / "wide"
    config = transformers.LlamaConfig.from_pretrained(llama_job["model"])
    config.hidden_size, config.intermediate_size, config.num_hidden_layers = 512, 1024, 4  # ~42M parameters
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    for file in llama_job["model"].glob("tokenizer*"):
        (folder / file.name).write_bytes(file.read_bytes())
    rss = ("TRAINER.HOOKS", "[{NAME: LoadRssHook}]", *SHARDING, "MODEL.PRETRAINED", str(folder), "TRAINER.MAX_STEPS", "1")
    fsdp, fsdp_dir = train_llama(llama_job, tmp_path / "fsdp", *rss)
    ddp, ddp_dir = train_llama(llama_job, tmp_path / "ddp", *rss, "TRAINER.STRATEGY", "ddp")
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    peak = {(name, rank): json.loads((run / f"rss-rank{rank}.json").read_text())["peak_mib"]
            for name, run in (("fsdp", fsdp_dir), ("ddp", ddp_dir)) for rank in (0, 1)}
    weights_mib = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20
    assert peak["fsdp", 1] < peak["ddp", 1] - weights_mib / 2, (peak, weights_mib)
    assert peak["fsdp", 0] < peak["ddp", 0] + weights_mib / 4, (peak, weights_mib)


def test_the_recipe_as_shipped_trains_with_bf16_activation_checkpointing_and_cpu_offload(llama_job, tmp_path):
    out = tmp_path / "offload"
    args = ["train", str(LLAMA_FSDP), "MODEL.PRETRAINED", str(llama_job["model"]), "TRAINER.FSDP_CPU_OFFLOAD", "true",
            "TRAINER.OUTPUT_DIR", str(out), "TRAINER.MAX_STEPS", "2", "TRAINER.LOG_EVERY_STEPS", "1",
            "DATASET.TRAIN.ROOT", str(llama_job["data"]), "DATASET.VAL.ROOT", str(llama_job["data"]),
            "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.MAX_LENGTH", "32", "--nproc", "2"]
    proc = run_trainlab(args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (out / "llama_fsdp").iterdir()
    assert sorted(step_losses(run_dir)) == [1, 2]
    assert "bf16" in (run_dir / "train.log").read_text()
    assert (run_dir / "model" / "model.safetensors").is_file()


def test_fsdp_runs_in_a_single_process_too(llama_job, tmp_path):
    """A group of one: FSDP's mixed precision and offload work without a launcher."""
    proc, run_dir = train_llama(llama_job, tmp_path / "one", nproc=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 process(es)" in (run_dir / "train.log").read_text() and sorted(step_losses(run_dir)) == [1, 2, 3, 4, 5]
