"""Every LoRA / PEFT run's RUN_DIR/adapter loads with ``peft.PeftModel.from_pretrained`` and merges with
``trainlab merge-lora``, both reproducing the logits of the run's final model."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import peft
import pytest
import torch
import transformers
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_model
from torch import nn
from trainers.clip_fixtures import make_ucf101, save_tiny_clip

from trainlab.commands.cli import main as trainlab_cli
from trainlab.components import build_model
from trainlab.config.loader import load_config
from trainlab.models.bert import BertForSequenceClassification
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.peft import add_lora_layers, save_adapter
from trainlab.peft.adapter import adapter_state_names
from trainlab.peft.peft_format import PEFT_CONFIG, PEFT_WEIGHTS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
ATOL = 1e-4
SHORT = ["TRAINER.EPOCHS", "1", "TRAINER.MAX_STEPS", "2", "TRAINER.WARMUP_RATIO", "0.0",
         "TRAINER.OPTIMIZER_KWARGS.lr", "0.02", "TRAINER.LOG_EVERY_STEPS", "1"]
SMALL_LORA = "{R: 4, ALPHA: 8, DROPOUT: 0.0}"


def train(config: Path, out: Path, *overrides: str) -> Path:
    """``trainlab train config`` for two steps, as a user runs it; returns the run directory."""
    args = [sys.executable, "-m", "trainlab", "train", str(config), "TRAINER.OUTPUT_DIR", str(out), *SHORT, *overrides]
    proc = subprocess.run(args, check=False, cwd=out.parent, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = [run for project in out.iterdir() for run in project.iterdir()]
    return run_dir


def built_model(run_dir: Path, *overrides: str) -> nn.Module:
    """The model as RUN_DIR/config.yaml with ``overrides`` builds it, e.g. the run's base (``MODEL.LORA null``)."""
    return build_model(load_config(run_dir / "config.yaml", overrides)).eval()


def run_model(run_dir: Path) -> nn.Module:
    """The run's final model: its exported weights (OUTPUT_FILENAME, adapters unmerged) in the model it built."""
    model = built_model(run_dir)
    load_model(model, str(run_dir / "best_model.safetensors"))
    return model


def merge(run_dir: Path, out: Path) -> Path:
    assert trainlab_cli(["merge-lora", str(run_dir / "adapter"), str(out)]) == 0
    return out


def outputs(model: nn.Module, batch: dict, field: str = "logits") -> torch.Tensor:
    with torch.no_grad():
        return getattr(model.eval()(**batch), field)


def assert_same_as_peft_writes(loaded: peft.PeftModel, adapter: Path, tmp_path: Path) -> None:
    """PEFT saving the adapter it loaded writes the same tensors under the same keys, and the same LoRA config."""
    loaded.save_pretrained(tmp_path / "resaved")
    ours, theirs = (_tensors(folder / PEFT_WEIGHTS) for folder in (adapter, tmp_path / "resaved"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], atol=0, rtol=0)
    fields = ("r", "lora_alpha", "rank_pattern", "alpha_pattern", "bias", "fan_in_fan_out", "task_type")
    config, resaved = (json.loads((folder / PEFT_CONFIG).read_text()) for folder in (adapter, tmp_path / "resaved"))
    assert {key: config[key] for key in fields} == {key: resaved[key] for key in fields}
    assert set(config["target_modules"]) == set(resaved["target_modules"])


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        names = handle.keys()
        return {key: handle.get_tensor(key) for key in names}


# ------------------------------------------------------------------ the runs, one per kind of adapter


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> Path:
    """40 Stack Overflow questions of the shipped sample, preprocessed: 32 train, 4 validation, 4 test."""
    from trainlab.preprocess.stackoverflow import preprocess

    folder = tmp_path_factory.mktemp("stackoverflow")
    sample = pd.read_csv(ROOT / "examples" / "stackoverflow" / "train-sample.csv")
    sample.head(40).to_csv(folder / "q.csv", index=False)
    preprocess(folder / "q.csv", folder / "data", seed=0)
    return folder / "data"


def so_overrides(data: Path) -> list[str]:
    words = ["TRAINER.BATCH_SIZE_TRAIN", "8", "TRAINER.BATCH_SIZE_EVAL", "8"]
    for split in ("TRAIN", "VAL", "TEST"):
        words += [f"DATASET.{split}.ROOT", str(data), f"DATASET.{split}.MAX_LENGTH", "32"]
    return words


@pytest.fixture(scope="module")
def minilm_lora_run(questions, tmp_path_factory) -> Path:
    """MiniLM (Hugging Face, in TransformersModelWrapper) with TrainLab's LoRA and a trained classifier."""
    out = tmp_path_factory.mktemp("minilm_lora") / "out"
    return train(CONFIGS / "stackoverflow" / "minilm_lora.yaml", out, *so_overrides(questions),
                 "MODEL.LORA", SMALL_LORA)


@pytest.fixture(scope="module")
def own_bert_lora_run(questions, tmp_path_factory) -> Path:
    """TrainLab's own BERT with tabular fusion and TrainLab's LoRA; fusion and classifier train whole."""
    out = tmp_path_factory.mktemp("own_bert_lora") / "out"
    return train(CONFIGS / "stackoverflow" / "own_bert_tabular.yaml", out, *so_overrides(questions),
                 "MODEL.LORA", SMALL_LORA)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def clip_lora_run(tiny_clip, tmp_path_factory) -> Path:
    """A tiny random CLIP with TrainLab's LoRA on q_proj / v_proj of both towers, nothing else trained."""
    folder = tmp_path_factory.mktemp("clip_lora")
    make_ucf101(folder / "ucf101")
    data = [word for split in ("TRAIN", "VAL", "TEST") for word in (f"DATASET.{split}.ROOT", str(folder / "ucf101"))]
    return train(CONFIGS / "ucf101" / "clip_peft_lora.yaml", folder / "out", *data, "DATASET.TRAIN.NUM_SHOTS", "0",
                 "MODEL.PRETRAINED", str(tiny_clip), "MODEL.PEFT", "null",
                 "MODEL.LORA", "{R: 4, ALPHA: 8, DROPOUT: 0.0, TARGET_MODULES: [q_proj, v_proj]}",
                 "TRAINER.BATCH_SIZE_TRAIN", "4", "TRAINER.BATCH_SIZE_EVAL", "8")


@pytest.fixture(scope="module")
def causal_lm_peft_run(tiny_llama, tmp_path_factory) -> Path:
    """A tiny random Llama with Hugging Face PEFT LoRA (MODEL.PEFT), configs/llm/causal_lm_lora.yaml."""
    folder = tmp_path_factory.mktemp("causal_lm_peft")
    for split in ("train", "validation"):
        rows = [{"prompt": f"question: what colour is {thing}? answer:", "response": f" {colour}"}
                for thing, colour in (("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"))]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return train(CONFIGS / "llm" / "causal_lm_lora.yaml", folder / "out", "MODEL.PRETRAINED", str(tiny_llama),
                 "MODEL.PEFT.R", "4", "MODEL.PEFT.LORA_ALPHA", "8", "TRAINER.BATCH_SIZE_TRAIN", "2",
                 "DATASET.TRAIN.ROOT", str(folder), "DATASET.VAL.ROOT", str(folder),
                 "DATASET.TRAIN.MAX_LENGTH", "32", "DATASET.VAL.MAX_LENGTH", "32")


# ------------------------------------------------------------------ each adapter in PEFT and merged


def test_hf_classifier_with_trainlab_lora(minilm_lora_run, minilm_path, text_batch, tmp_path):
    adapter = minilm_lora_run / "adapter"
    config = json.loads((adapter / PEFT_CONFIG).read_text())
    assert (config["r"], config["lora_alpha"], set(config["target_modules"])) == (4, 8, {"query", "value"})
    assert (config["modules_to_save"], config["task_type"]) == (["classifier"], "SEQ_CLS")
    assert (adapter / "trainlab_adapter.json").is_file()
    expected = outputs(run_model(minilm_lora_run), text_batch)

    base = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    loaded = peft.PeftModel.from_pretrained(base, adapter)
    torch.testing.assert_close(outputs(loaded, text_batch), expected, atol=ATOL, rtol=0)
    assert_same_as_peft_writes(loaded, adapter, tmp_path)

    merged = transformers.AutoModelForSequenceClassification.from_pretrained(merge(minilm_lora_run, tmp_path / "m"))
    torch.testing.assert_close(outputs(merged, text_batch), expected, atol=ATOL, rtol=0)


def test_own_bert_with_trainlab_lora(own_bert_lora_run, text_batch, tmp_path):
    adapter = own_bert_lora_run / "adapter"
    config = json.loads((adapter / PEFT_CONFIG).read_text())
    assert (config["modules_to_save"], config["task_type"]) == (["fusion", "classifier"], None)
    batch = {**text_batch, "tabular": torch.randn(2, 5, generator=torch.Generator().manual_seed(0))}
    expected = outputs(run_model(own_bert_lora_run), batch)

    base = built_model(own_bert_lora_run, "MODEL.LORA", "null")  # TrainLab's model built as the run built it
    assert (outputs(base, batch) - expected).abs().max() > ATOL
    loaded = peft.PeftModel.from_pretrained(base, adapter)
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=ATOL, rtol=0)
    assert_same_as_peft_writes(loaded, adapter, tmp_path)

    merged_dir = merge(own_bert_lora_run, tmp_path / "m")
    merged = built_model(own_bert_lora_run, "MODEL.LORA", "null", "MODEL.PRETRAINED", str(merged_dir))
    torch.testing.assert_close(outputs(merged, batch), expected, atol=ATOL, rtol=0)


def test_clip_with_trainlab_lora(clip_lora_run, tiny_clip, tmp_path):
    processor = transformers.CLIPProcessor.from_pretrained(tiny_clip)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(3)]
    batch = dict(processor(text=["a photo of yo yo.", "juggling balls."], images=images, return_tensors="pt",
                           padding=True))
    expected = outputs(run_model(clip_lora_run), batch, "logits_per_image")
    config = json.loads((clip_lora_run / "adapter" / PEFT_CONFIG).read_text())
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert config["modules_to_save"] is None and config["task_type"] is None

    base = transformers.CLIPModel.from_pretrained(tiny_clip)
    assert (outputs(base, batch, "logits_per_image") - expected).abs().max() > ATOL  # the adapter trained
    loaded = peft.PeftModel.from_pretrained(base, clip_lora_run / "adapter")
    torch.testing.assert_close(outputs(loaded, batch, "logits_per_image"), expected, atol=ATOL, rtol=0)
    assert_same_as_peft_writes(loaded, clip_lora_run / "adapter", tmp_path)

    merged = transformers.CLIPModel.from_pretrained(merge(clip_lora_run, tmp_path / "m"))
    torch.testing.assert_close(outputs(merged, batch, "logits_per_image"), expected, atol=ATOL, rtol=0)


def test_causal_lm_with_hf_peft(causal_lm_peft_run, tiny_llama, text_batch, tmp_path):
    """The issue: `trainlab merge-lora RUN_DIR/adapter OUT` after configs/llm/causal_lm_lora.yaml had no adapter."""
    batch = {key: text_batch[key] for key in ("input_ids", "attention_mask")}
    expected = outputs(run_model(causal_lm_peft_run), batch)
    exported = transformers.AutoModelForCausalLM.from_pretrained(causal_lm_peft_run / "model")
    torch.testing.assert_close(outputs(exported, batch), expected, atol=ATOL, rtol=0)

    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert (outputs(base, batch) - expected).abs().max() > ATOL
    loaded = peft.PeftModel.from_pretrained(base, causal_lm_peft_run / "adapter")
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=ATOL, rtol=0)

    merged = transformers.AutoModelForCausalLM.from_pretrained(merge(causal_lm_peft_run, tmp_path / "m"))
    torch.testing.assert_close(outputs(merged, batch), expected, atol=ATOL, rtol=0)


# ------------------------------------------------------------------ layouts a config cannot make


def _nudge(model: nn.Module) -> None:
    """Non-zero LoRA updates and a changed head, as training leaves them."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or (param.requires_grad and "lora_" not in name):
                param.add_(torch.randn_like(param) * 0.05)


def test_ranks_and_alphas_that_differ_by_layer_use_patterns(minilm_path, text_batch, tmp_path):
    wrapper = TransformersModelWrapper(pretrained=minilm_path, num_labels=2,
                                       lora={"R": 4, "ALPHA": 8, "DROPOUT": 0.0, "IGNORE_LAYERS": [1]})
    add_lora_layers(wrapper.model, ["value"], r=2, lora_alpha=6, lora_dropout=0.0, target_regex=r".*layer\.1\..*value")
    _nudge(wrapper)
    save_adapter(wrapper, str(tmp_path / "adapter"))
    config = json.loads((tmp_path / "adapter" / PEFT_CONFIG).read_text())
    layer_1 = r"bert\.encoder\.layer\.1\.attention\.self\.value"
    assert (config["r"], config["rank_pattern"], config["alpha_pattern"]) == (4, {layer_1: 2}, {layer_1: 6})
    assert len(config["target_modules"]) == 11  # layer 1's query has no LoRA: full names, not [query, value]

    base = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter")
    torch.testing.assert_close(outputs(loaded, text_batch), outputs(wrapper, text_batch), atol=ATOL, rtol=0)
    assert_same_as_peft_writes(loaded, tmp_path / "adapter", tmp_path)


def test_full_state_passed_in_is_what_is_written(minilm_path, text_batch, tmp_path):
    """A sharded run hands over the gathered tensors; the model's own (here zeroed) are not read."""
    model = BertForSequenceClassification(pretrained=minilm_path, lora={"R": 4, "ALPHA": 8, "DROPOUT": 0.0})
    _nudge(model)
    expected = outputs(model, text_batch)
    names = adapter_state_names(model)
    assert {"classifier.weight", "classifier.bias"} <= names and not any("query.weight" in n for n in names)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items() if name in names}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param.zero_()
    save_adapter(model, str(tmp_path / "adapter"), state=state)
    torch.manual_seed(1)
    base = BertForSequenceClassification(pretrained=minilm_path)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter")
    torch.testing.assert_close(outputs(loaded, text_batch), expected, atol=ATOL, rtol=0)


def test_what_peft_cannot_express_gets_a_warning_and_only_trainlab_files(minilm_path, tmp_path, caplog):
    lora = {"R": 4, "TRAINABLE": ["classifier", "query.bias"]}  # a LoRA layer's own bias: no PEFT module
    model = BertForSequenceClassification(pretrained=minilm_path, lora=lora)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / PEFT_CONFIG).write_text("{}")  # an older adapter's copy must not stay behind
    with caplog.at_level(logging.WARNING):
        save_adapter(model, str(tmp_path / "adapter"))
    assert sorted(path.name for path in (tmp_path / "adapter").iterdir()) == [
        "trainlab_adapter.json", "trainlab_adapter.safetensors"
    ]
    assert "query.bias' trained, but it belongs to a LoRA layer" in caplog.text
