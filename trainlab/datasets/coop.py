"""Image classification in the CoOp split format (UCF101, Caltech101, OxfordPets, … as the CoOp repo ships them).

A dataset folder holds the images and one JSON split file::

    <root>/split_zhou_UCF101.json    {"train": [[relative_image_path, label, class_name], ...], "val": [...], "test": [...]}
    <root>/UCF-101-midframes/        images, relative to this folder
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError
from ..registries import DATASETS
from .base import DatasetBase, Transform

SPLIT_ALIASES = {"validation": "val", "valid": "val", "dev": "val"}
SPLIT_FORMAT = '{"train": [[relative_image_path, label_index, class_name], ...], "val": [...], "test": [...]}'


def readable_classname(name: str) -> str:
    """CoOp's folder-style class names as text for prompts: ``Apply_Eye_Makeup`` → ``Apply Eye Makeup``."""
    return " ".join(name.replace("_", " ").split())


@DATASETS.register_module()
class CoOpSplitDataset(DatasetBase):
    """One split of a CoOp-format image classification dataset; items are ``{pixel_values, labels}``.

    ``classnames`` lists the readable class names in label order, taken from all splits of the file so
    that every split agrees on them. With a ``processor`` (the model's processor or image processor,
    passed by the builder) ``pixel_values`` is what the model expects; without one it is the image as a
    float tensor ``[3, H, W]`` in [0, 1].

    Args:
        root: the folder holding ``split_file`` and ``image_dir``.
        split: ``train``, ``val`` (or ``validation``) or ``test``.
        num_shots: keep this many images per class (CoOp's few-shot setting), chosen with ``seed``;
            0 keeps the whole split.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        processor: Any = None,
        image_dir: str = "images",
        split_file: str = "split.json",
        num_shots: int = 0,
        seed: int = 0,
        transform: Transform | None = None,
        cache_in_memory: bool = False,
    ) -> None:
        super().__init__(transform, cache_in_memory)
        if num_shots < 0:
            raise ConfigError(f"NUM_SHOTS must be 0 (the whole split) or a positive count, got {num_shots}")
        self.root = Path(root)
        self.split = SPLIT_ALIASES.get(split, split)
        self.image_dir = self.root / image_dir
        self.image_processor = getattr(processor, "image_processor", processor)
        splits = _read_split_file(self.root, split_file)
        if self.split not in splits:
            raise DataError(
                f"{self.root / split_file} has no '{self.split}' split (it has: {', '.join(splits)}); "
                f"set SPLIT to one of them"
            )
        if not self.image_dir.is_dir():
            raise DataError(
                f"image folder {self.image_dir} not found; the paths in {split_file} are relative to it "
                f"(set IMAGE_DIR if the images live elsewhere under {self.root})"
            )
        self.classnames = _classnames(splits, self.root / split_file)
        items = [(str(path), label) for path, label, _ in splits[self.split]]
        if not items:
            raise DataError(f"the '{self.split}' split of {self.root / split_file} is empty")
        self.data = few_shot(items, num_shots, seed) if num_shots else items

    def load_item(self, index: int) -> dict[str, Any]:
        relative_path, label = self.data[index]
        return {"pixel_values": self.pixel_values(self.load_image(relative_path)), "labels": label}

    def load_image(self, relative_path: str) -> Image.Image:
        path = self.image_dir / relative_path
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"image {path} listed in the '{self.split}' split does not exist") from None
        except UnidentifiedImageError:
            raise DataError(f"{path} is not an image PIL can read") from None

    def pixel_values(self, image: Image.Image) -> torch.Tensor:
        if self.image_processor is None:
            return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)  # [3, H, W]
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]


@DATASETS.register_module()
class UCF101Dataset(CoOpSplitDataset):
    """UCF101 action recognition from middle frames, with CoOp's split (101 classes)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        processor: Any = None,
        image_dir: str = "UCF-101-midframes",
        split_file: str = "split_zhou_UCF101.json",
        num_shots: int = 0,
        seed: int = 0,
        transform: Transform | None = None,
        cache_in_memory: bool = False,
    ) -> None:
        super().__init__(
            root, split, processor, image_dir, split_file, num_shots, seed, transform, cache_in_memory
        )


def few_shot(items: list[tuple[str, int]], num_shots: int, seed: int) -> list[tuple[str, int]]:
    """``num_shots`` items per label (all of a label's items when it has fewer), the same for the same seed."""
    by_label: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for item in items:
        by_label[item[1]].append(item)
    rng = random.Random(seed)
    chosen = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen += rng.sample(group, num_shots) if len(group) > num_shots else group
    return chosen


def _read_split_file(root: Path, split_file: str) -> dict[str, list]:
    if not root.is_dir():
        raise DataError(f"dataset folder {root} not found; set ROOT to the folder holding {split_file}")
    path = root / split_file
    if not path.is_file():
        raise DataError(f"split file {path} not found; expected CoOp's split JSON there: {SPLIT_FORMAT}")
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); expected {SPLIT_FORMAT}") from None
    if not isinstance(splits, dict):
        raise DataError(f"{path} holds a {type(splits).__name__}, expected an object: {SPLIT_FORMAT}")
    for name, rows in splits.items():
        if not isinstance(rows, list):
            raise DataError(f"{path}: '{name}' is not a list of entries; expected {SPLIT_FORMAT}")
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], int)):
                raise DataError(
                    f"{path}: '{name}' has the entry {row!r}; expected [relative_image_path, label_index, class_name]"
                )
    return splits


def _classnames(splits: dict[str, list], path: Path) -> list[str]:
    """Readable class names indexed by label, checked for one name per label and labels 0..C-1."""
    names: dict[int, str] = {}
    for rows in splits.values():
        for _, label, name in rows:
            if names.setdefault(label, name) != name:
                raise DataError(f"{path}: label {label} is named both '{names[label]}' and '{name}'")
    if sorted(names) != list(range(len(names))):
        missing = sorted(set(range(max(names, default=-1) + 1)) - set(names))
        raise DataError(
            f"{path}: labels must run from 0 to {len(names) - 1} without gaps; no class has label(s) {missing}"
        )
    return [readable_classname(names[label]) for label in range(len(names))]
