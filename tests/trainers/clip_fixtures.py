"""Builders for the CLIP tests: a tiny UCF101 folder in CoOp's format and tiny random CLIP / Chinese-CLIP models."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

CLASSES = ["Apply_Eye_Makeup", "Band_Marching", "Juggling_Balls", "Yo_Yo"]
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40)]
IMAGES_PER_CLASS = 6
IMAGE_DIR = "UCF-101-midframes"
SPLIT_FILE = "split_zhou_UCF101.json"


def make_ucf101(root: Path) -> dict[str, list]:
    """4 classes × 6 noisy single-colour frames with a class-dependent stripe; returns the split file's content.

    Per class: images 0-2 train, 3 val, 4-5 test, except that the last class's image 5 trains, so the test
    split has 7 images (an uneven share for 2 processes).
    """
    rng = np.random.default_rng(0)
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, (name, colour) in enumerate(zip(CLASSES, COLOURS)):
        (root / IMAGE_DIR / name).mkdir(parents=True)
        for index in range(IMAGES_PER_CLASS):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 40, 3)), 0, 255)
            pixels[:, 8 * label : 8 * label + 8] = 255 - pixels[:, 8 * label : 8 * label + 8]
            relative = f"{name}/v_{name}_g{index + 1:02d}_c01.jpg"
            Image.fromarray(pixels.astype(np.uint8)).save(root / IMAGE_DIR / relative)
            last = label == len(CLASSES) - 1 and index == IMAGES_PER_CLASS - 1
            split = "train" if index < 3 or last else "val" if index == 3 else "test"
            splits[split].append([relative, label, name])
    (root / SPLIT_FILE).write_text(json.dumps(splits), encoding="utf-8")
    return splits


def _tower(**extra: int) -> dict[str, int]:
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        **extra,
    }


VISION = _tower(image_size=32, patch_size=8)


def save_tiny_clip(directory: Path) -> Path:
    """A random CLIPModel with a character-level CLIPTokenizer and a 32-pixel image processor."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + ".":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)  # CLIP's BPE marks a word's last symbol
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    text = _tower(
        vocab_size=len(vocab), max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1
    )
    config = transformers.CLIPConfig(text_config=text, vision_config=VISION, projection_dim=16)
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(directory)
    images = transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    transformers.CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def save_tiny_chinese_clip(directory: Path) -> Path:
    """A random ChineseCLIPModel (BERT text tower) with a character-level BertTokenizer covering the prompt."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"这张图片描述的内容是", "."]
    tokens += [*string.ascii_lowercase, *(f"##{char}" for char in string.ascii_lowercase)]
    tokenizer = transformers.BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})
    text = _tower(vocab_size=len(tokens), max_position_embeddings=64)
    config = transformers.ChineseCLIPConfig(text_config=text, vision_config=VISION, projection_dim=16)
    torch.manual_seed(0)
    transformers.ChineseCLIPModel(config).save_pretrained(directory)
    images = transformers.ChineseCLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    transformers.ChineseCLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(directory)
    return directory
