"""Read and write weights in Hugging Face's layout (safetensors, sharded or not, or pytorch_model.bin)."""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import load_file, save_file

from trainlab.errors import ConfigError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"


def read_state_dict(directory: str) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in ``directory``, preferring safetensors over pickled ``.bin`` files.

    A directory without weights, or with a damaged safetensors file, is one ConfigError naming it.
    """
    from .pretrained import check_weights

    check_weights(directory)
    single = os.path.join(directory, SAFETENSORS)
    if os.path.isfile(single):
        return load_file(single)
    index = os.path.join(directory, SAFETENSORS_INDEX)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as file:
            shards = sorted(set(json.load(file)["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(os.path.join(directory, shard)))
        return state
    pickled = os.path.join(directory, PYTORCH_BIN)
    if os.path.isfile(pickled):
        # weights_only refuses arbitrary pickled objects, so a checkpoint cannot run code on load
        return torch.load(pickled, map_location="cpu", weights_only=True)
    raise ConfigError(
        f"no weights in '{directory}': expected {SAFETENSORS}, {SAFETENSORS_INDEX} or {PYTORCH_BIN} "
        f"(the files save_pretrained writes)"
    )


def write_state_dict(state: dict[str, torch.Tensor], directory: str) -> str:
    """Write ``state`` as ``model.safetensors`` in ``directory``; return the file path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, SAFETENSORS)
    save_file(
        {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()},
        path,
        metadata={"format": "pt"},
    )
    return path
