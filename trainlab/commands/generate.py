"""`trainlab generate`: greedy answers of a trained causal LM to new prompts, encoded exactly as training
encoded its prompts (the tokenizer's BOS, the run's chat template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

Prompt = str | list[dict[str, str]]  # a text, or a conversation that ends with the user's turn


def read_prompts(texts: list[str], input_file: str | None) -> list[Prompt]:
    """The ``--prompt`` texts, or the rows of the ``--input`` JSONL file: {"prompt": text} or {"messages": [...]}."""
    if input_file is None:
        return list(texts)
    path = Path(input_file)
    if not path.is_file():
        raise ConfigError(f"--input {input_file}: no such file — give a JSONL file of {{\"prompt\": ...}} or "
                          f"{{\"messages\": [...]}} rows")
    lines = path.read_text(encoding="utf-8").splitlines()
    prompts = [_parse_row(line, f"{input_file}:{number}") for number, line in enumerate(lines, 1) if line.strip()]
    if not prompts:
        raise DataError(f"{input_file} holds no prompts: write one JSON object per line, e.g. {{\"prompt\": \"Hi\"}}")
    return prompts


def _parse_row(line: str, where: str) -> Prompt:
    expected = 'expected {"prompt": "text"} or {"messages": [{"role": "user", "content": "text"}, ...]}'
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg}); {expected}") from None
    if isinstance(row, dict) and isinstance(row.get("prompt"), str):
        return row["prompt"]
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        raise DataError(f"{where}: {expected}")
    if messages[-1]["role"] != "user":
        raise DataError(f"{where}: the conversation's last turn is '{messages[-1]['role']}'; end it with a 'user' "
                        f"turn, which the model answers")
    return messages


def load_model(run_dir: str, adapter: bool = False) -> tuple[Any, Any, str]:
    """The model of a run (or of an HF model directory), its tokenizer and the run's DATASET.TRAIN.CHAT_TEMPLATE
    ("" when none is set: the tokenizer's own then renders conversations).

    Without ``adapter``: RUN_DIR/model, or RUN_DIR itself in HF layout. With it: the base model of the run's
    config.yaml (MODEL.PRETRAINED) and the PEFT adapter in RUN_DIR/adapter.
    """
    path = Path(run_dir)
    config = _run_config(path)
    trust = bool(config.get("MODEL", {}).get("TRUST_REMOTE_CODE", False))
    directory = _base_model_directory(path, config) if adapter else _model_directory(path)
    # Imported after the checks, so that a wrong path fails at once.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models.pretrained import quiet_hf

    with quiet_hf():
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=trust)
        model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=trust)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(path / "adapter"))
    return model, tokenizer, config.get("DATASET", {}).get("TRAIN", {}).get("CHAT_TEMPLATE") or ""


def _run_config(path: Path) -> dict[str, Any]:
    """RUN_DIR/config.yaml as a plain mapping; empty for a bare HF model directory."""
    import yaml

    file = path / "config.yaml"
    return (yaml.safe_load(file.read_text(encoding="utf-8")) or {}) if file.is_file() else {}


def _model_directory(path: Path) -> Path:
    for directory in (path / "model", path):
        if (directory / "config.json").is_file():
            return directory
    adapter = " (this run saved an adapter: pass --adapter)" if (path / "adapter").is_dir() else ""
    raise ConfigError(f"{path}: no model there — expected a run directory with model/ (written when training ends) or "
                      f"a Hugging Face model directory with config.json{adapter}")


def _base_model_directory(path: Path, config: dict[str, Any]) -> str:
    from ..models.pretrained import resolve_pretrained
    from ..peft.adapter import ADAPTER_CONFIG

    adapter = path / "adapter"
    if (adapter / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"{adapter} is a TrainLab LoRA adapter, not a PEFT one: generate from {path} without "
                          f"--adapter (its merged model), or merge it first with `trainlab merge-lora {adapter} OUT_DIR`")
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"--adapter: {adapter} holds no PEFT adapter (adapter_config.json); runs with MODEL.PEFT "
                          f"write it when training ends — or leave out --adapter to use the merged model")
    pretrained = config.get("MODEL", {}).get("PRETRAINED")
    if not pretrained:
        raise ConfigError(f"--adapter: {path / 'config.yaml'} names no MODEL.PRETRAINED to put the adapter on")
    return resolve_pretrained(pretrained)


def generate_answers(run_dir: str, prompts: list[Prompt], max_new_tokens: int = 64,
                     adapter: bool = False) -> list[str]:
    """Greedy answers of the model in ``run_dir`` to ``prompts`` (special tokens left out)."""
    import torch

    from ..datasets.prompts import encode_prompt, resolve_chat_template
    from ..generation import generate_greedy

    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    model, tokenizer, template = load_model(run_dir, adapter)
    # Only conversations use the template: a text prompt never fails over a template file that is not here.
    chat = resolve_chat_template(tokenizer, template) if any(isinstance(p, list) for p in prompts) else None
    encoded = [encode_prompt(tokenizer, prompt, chat) for prompt in prompts]
    empty = next((i for i, ids in enumerate(encoded, 1) if not ids), None)
    if empty is not None:
        raise DataError(f"prompt {empty} is empty: give it some text")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generated = generate_greedy(model.to(device), encoded, max_new_tokens, tokenizer.eos_token_id, device=device)
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]


def write_generations(output: str, prompts: list[Prompt], answers: list[str]) -> None:
    rows = [{"prompt": prompt, "generation": answer} for prompt, answer in zip(prompts, answers)]
    Path(output).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def shown(prompt: Prompt) -> str:
    """A prompt on one line: the text, or a conversation's last (the user's) message."""
    return " ".join((prompt if isinstance(prompt, str) else prompt[-1]["content"]).split())


__all__ = ["generate_answers", "load_model", "read_prompts", "shown", "write_generations"]
