"""PEFT LoRA fine-tuning of tiny random CLIP / Chinese-CLIP models on a tiny UCF101 in CoOp's format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from clip_fixtures import CLASSES, IMAGE_DIR, SPLIT_FILE, make_ucf101, save_tiny_chinese_clip, save_tiny_clip

from trainlab.datasets.coop import CoOpSplitDataset, UCF101Dataset
from trainlab.errors import ConfigError, DataError
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.trainers.clip import PEFTCLIPTrainer

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "ucf101"
CHINESE_PROMPT = "这张图片描述的内容是{}"
CHINESE_LORA = {"r": 4, "alpha": 8, "target_modules": ["query", "value", "q_proj", "v_proj"]}
READABLE = ["Apply Eye Makeup", "Band Marching", "Juggling Balls", "Yo Yo"]


@pytest.fixture(scope="module")
def ucf101(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ucf101")
    make_ucf101(root)
    return root


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def tiny_chinese_clip(tmp_path_factory) -> Path:
    return save_tiny_chinese_clip(tmp_path_factory.mktemp("tiny_chinese_clip"))


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHON": sys.executable}
    return subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def overrides(model: Path, data: Path, out: Path, lr: str) -> list[str]:
    """All 13 training frames (NUM_SHOTS 0), LoRA r=4, batch 4, evaluation batches of 2, fp32 (compared with
    in-process float32 figures)."""
    settings = {
        "MODEL.PRETRAINED": str(model),
        "MODEL.PEFT.R": "4",
        "MODEL.PEFT.ALPHA": "8",
        "TRAINER.OUTPUT_DIR": str(out),
        "TRAINER.BATCH_SIZE_TRAIN": "4",
        "TRAINER.BATCH_SIZE_EVAL": "2",
        "TRAINER.OPTIMIZER_KWARGS.lr": lr,
        "TRAINER.WARMUP_RATIO": "0.0",
        "TRAINER.LOG_EVERY_STEPS": "1",
        "TRAINER.PRECISION": "fp32",
        "DATASET.TRAIN.NUM_SHOTS": "0",
        **{f"DATASET.{split}.ROOT": str(data) for split in ("TRAIN", "VAL", "TEST")},
    }
    return [word for pair in settings.items() for word in pair]


def read_run(out: Path) -> tuple[Path, list[dict]]:
    [run_dir] = [path for project in out.iterdir() for path in project.iterdir()]
    return run_dir, [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ the dataset


def test_ucf101_items_classnames_and_splits(ucf101, tiny_clip):
    processor = TransformersModelWrapper(str(tiny_clip), task="clip").processor
    test = UCF101Dataset(ucf101, split="test", processor=processor)
    assert test.classnames == READABLE
    assert len(test) == 7 and len(UCF101Dataset(ucf101, split="validation")) == 4
    item = test[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["labels"] == 0
    raw = UCF101Dataset(ucf101, split="train")[0]["pixel_values"]  # no processor: the frame in [0, 1]
    assert raw.shape == (3, 40, 40) and raw.dtype == torch.float32 and 0.0 <= raw.min() < raw.max() <= 1.0
    assert raw[0].mean() > raw[2].mean()  # class 0 frames are red


def test_few_shot_subsets_are_per_class_and_fixed_by_seed(ucf101):
    def chosen(seed: int) -> list:
        return UCF101Dataset(ucf101, split="train", num_shots=2, seed=seed).data

    subset = chosen(0)
    assert sorted(label for _, label in subset) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert subset == chosen(0)
    assert any(chosen(seed) != subset for seed in range(1, 5))
    assert len(UCF101Dataset(ucf101, split="train", num_shots=10).data) == 13  # fewer than asked: all
    with pytest.raises(ConfigError, match="NUM_SHOTS must be 0 .* got -1"):
        UCF101Dataset(ucf101, num_shots=-1)


def test_generic_coop_dataset_reads_any_folder_and_file_name(ucf101):
    dataset = CoOpSplitDataset(ucf101, split="val", image_dir=IMAGE_DIR, split_file=SPLIT_FILE)
    assert dataset.classnames == READABLE and len(dataset) == 4


def test_dataset_errors_name_the_culprit_and_the_expected_layout(ucf101, tmp_path):
    with pytest.raises(DataError, match=f"dataset folder {tmp_path / 'nowhere'} not found"):
        UCF101Dataset(tmp_path / "nowhere")
    with pytest.raises(
        DataError, match=rf"split file {tmp_path / SPLIT_FILE} not found.*\"train\": \[\[relative_image_path"
    ):
        UCF101Dataset(tmp_path)
    (tmp_path / SPLIT_FILE).write_text(json.dumps({"train": [["a.jpg", 0, "A"]]}))
    with pytest.raises(DataError, match=f"image folder {tmp_path / IMAGE_DIR} not found"):
        UCF101Dataset(tmp_path)
    with pytest.raises(DataError, match="has no 'test' split \\(it has: train\\)"):
        UCF101Dataset(tmp_path, split="test")
    (tmp_path / IMAGE_DIR).mkdir()
    with pytest.raises(
        DataError, match=f"image {tmp_path / IMAGE_DIR / 'a.jpg'} listed in the 'train' split does not exist"
    ):
        UCF101Dataset(tmp_path)[0]
    (tmp_path / SPLIT_FILE).write_text(json.dumps({"train": [["a.jpg", "0", "A"]]}))
    with pytest.raises(DataError, match="expected \\[relative_image_path, label_index, class_name\\]"):
        UCF101Dataset(tmp_path)
    (tmp_path / SPLIT_FILE).write_text(json.dumps({"train": [["a.jpg", 0, "A"], ["b.jpg", 2, "B"]]}))
    with pytest.raises(DataError, match="no class has label\\(s\\) \\[1\\]"):
        UCF101Dataset(tmp_path)


# ------------------------------------------------------------------ the trainer


def test_logits_are_scaled_cosine_similarities_with_every_class_prompt(ucf101, tiny_clip):
    model = TransformersModelWrapper(str(tiny_clip), task="clip").eval()
    test = UCF101Dataset(ucf101, split="test", processor=model.processor)
    trainer = PEFTCLIPTrainer(model, batch_size_eval=3, device="cpu", precision="fp32")
    metrics = trainer.evaluate_dataset(test, prefix="test")  # takes the class names from the dataset
    assert trainer.prompts == [f"a photo of {name}." for name in READABLE]

    batch = test.collate_fn([test[i] for i in range(len(test))])
    with torch.no_grad():
        logits = trainer.forward(batch)
        text = model.tokenizer(trainer.prompts, padding=True, return_tensors="pt")
        image_features = model.model.get_image_features(pixel_values=batch["pixel_values"])
        text_features = model.model.get_text_features(**text)
    image_features = F.normalize(getattr(image_features, "pooler_output", image_features), dim=-1)
    text_features = F.normalize(getattr(text_features, "pooler_output", text_features), dim=-1)
    expected = model.model.logit_scale.exp() * image_features @ text_features.T
    assert logits.shape == (7, len(CLASSES))
    torch.testing.assert_close(logits, expected)
    assert metrics["test/num_samples"] == 7
    assert metrics["test/accuracy"] == (expected.argmax(1) == batch["labels"]).double().mean().item()
    assert metrics["test/loss"] == pytest.approx(F.cross_entropy(expected, batch["labels"]).item(), abs=1e-5)


def test_chinese_clip_lora_gets_gradients_in_both_towers(ucf101, tiny_chinese_clip):
    model = TransformersModelWrapper(str(tiny_chinese_clip), task="clip", peft=CHINESE_LORA)
    train = UCF101Dataset(ucf101, split="train", processor=model.processor)
    trainer = PEFTCLIPTrainer(model, prompt_template=CHINESE_PROMPT, device="cpu")
    trainer.evaluate_dataset(train)
    assert trainer.prompts[0] == "这张图片描述的内容是Apply Eye Makeup"
    model.train()
    trainer.train_step(train.collate_fn([train[i] for i in range(4)])).backward()
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    updated = {
        name for name, param in model.named_parameters() if param.grad is not None and param.grad.any()
    }
    assert {name for name in trainable if "lora_B" in name} <= updated  # lora_A's gradient is 0 while B = 0
    assert any("text_model" in name for name in updated) and any("vision_model" in name for name in updated)


def test_classnames_must_come_from_somewhere_and_agree(ucf101, tiny_clip):
    model = TransformersModelWrapper(str(tiny_clip), task="clip")
    test = UCF101Dataset(ucf101, split="test")
    with pytest.raises(ConfigError, match="TRAINER.CLASSNAMES"):
        PEFTCLIPTrainer(model, device="cpu").evaluate_dataset(torch.utils.data.TensorDataset(torch.zeros(2)))
    with pytest.raises(DataError, match="has 4 classes, but the trainer classifies over 3"):
        PEFTCLIPTrainer(model, classnames=["a", "b", "c"], device="cpu").evaluate_dataset(test)


# ------------------------------------------------------------------ as a user runs it


def test_clip_lora_run_trains_and_scores_all_classes(ucf101, tiny_clip, tmp_path):
    args = overrides(tiny_clip, ucf101, tmp_path / "out", lr="1.0e-2")
    proc = run(
        [
            sys.executable,
            "-m",
            "trainlab",
            "train",
            str(CONFIGS / "clip_peft_lora.yaml"),
            *args,
            "TRAINER.EPOCHS",
            "2",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir, metrics = read_run(tmp_path / "out")
    val = [m for m in metrics if "val/loss" in m]
    assert len(val) == 2 and val[1]["val/loss"] < val[0]["val/loss"], val
    assert {m["val/num_samples"] for m in val} == {4}
    [test] = [m for m in metrics if "test/accuracy" in m]
    assert test["test/num_samples"] == 7 and test["test/accuracy"] > 0.25
    lora_params = 2 * 2 * 2 * 4 * (32 + 32)  # towers × layers × (q_proj, v_proj) × r × (in + out)
    assert f"trainable parameters {lora_params:,} / " in (run_dir / "train.log").read_text()
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "model" / "config.json").is_file()


def test_chinese_clip_on_two_processes_matches_one_process(ucf101, tiny_chinese_clip, tmp_path):
    """With lr 1e-30 the model stays as built, so 2 processes must report the whole-set metrics of 1 process."""
    args = overrides(tiny_chinese_clip, ucf101, tmp_path / "out", lr="1.0e-30")
    # from the repository root, as a user runs the script with its default config
    proc = run(["bash", "scripts/peft_chinese_clip.sh", "0,1", *args, "TRAINER.EPOCHS", "1"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir, metrics = read_run(tmp_path / "out")
    assert (
        run_dir.parent.name == "ucf101_chinese_clip"
        and "2 process(es)" in (run_dir / "train.log").read_text()
    )

    model = TransformersModelWrapper(str(tiny_chinese_clip), task="clip", peft=CHINESE_LORA)
    trainer = PEFTCLIPTrainer(model, prompt_template=CHINESE_PROMPT, batch_size_eval=2, device="cpu", precision="fp32")
    for split in ("val", "test"):
        [logged] = [m for m in metrics if f"{split}/accuracy" in m]
        single = trainer.evaluate_dataset(
            UCF101Dataset(ucf101, split, processor=model.processor), prefix=split
        )
        assert (
            logged[f"{split}/num_samples"] == single[f"{split}/num_samples"] == (4 if split == "val" else 7)
        )
        for key in ("loss", "accuracy", "f1", "roc_auc"):
            assert logged[f"{split}/{key}"] == pytest.approx(single[f"{split}/{key}"], abs=1e-5), key
