"""The model as a memory estimate sees it, read from the config alone: MODEL instantiated on the meta device
(shapes without storage) from its ``config.json``, with the config's FREEZE / LORA / PEFT applied by the
functions a run uses, so parameter counts are exact. No weights are read and no device is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from .config import Config
from .errors import ConfigError

LM_TASKS = ("causal-lm", "seq2seq")  # their logits span the vocabulary
# MODEL keys of TransformersModelWrapper that are not fields of the model's config
_WRAPPER_KEYS = frozenset({"name", "pretrained", "task", "model_type", "trust_remote_code", "freeze", "compile",
                           "gradient_checkpointing", "lora", "peft", "torch_dtype", "dtype", "attn_implementation"})


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The model as the estimate sees it: counts from a meta-device instance, dimensions from its config."""

    architecture: str
    params: int
    trainable: int
    param_bytes: int
    trainable_bytes: int
    block_params: int  # the largest block (``_no_split_modules``): what fsdp gathers while it runs
    block_trainable: int
    root_params: int  # parameters in no block (embeddings, head, final norm): fsdp's root group
    root_trainable: int
    layers: int
    hidden: int
    heads: int
    kv_dim: int  # width of k and of v: key-value heads × head dim
    intermediate: int
    gated_mlp: bool  # gate and up projections (Llama, Qwen, Mistral) rather than one fc1 (BERT, GPT-2)
    eager_attention: bool  # the attention scores are kept for backward (no SDPA / flash kernel)
    output_width: int  # logits per token: the vocabulary for LM tasks, else the labels
    max_positions: int | None


def is_estimable(cfg: Config) -> bool:
    """Whether MODEL is a Hugging Face model built from its ``config.json`` (TransformersModelWrapper)."""
    from .models.hf_wrapper import TransformersModelWrapper
    from .registries import MODELS

    target = MODELS.get(cfg.MODEL.NAME)
    return isinstance(target, type) and issubclass(target, TransformersModelWrapper)


def read_model_shape(cfg: Config, layer_classes: Iterable[str] = ()) -> ModelShape:
    """Counts and dimensions of MODEL, instantiated on the meta device with its frozen parts and adapters."""
    with _quiet():
        model, config, task = build_meta_model(cfg)
    return shape_of(model, config, task, layer_classes)


def build_meta_model(cfg: Config) -> tuple[Any, Any, str]:
    """MODEL on the meta device as a run builds it (FREEZE, LORA, PEFT applied), its HF config and its task.

    TransformersModelWrapper models come from ``config.json`` alone; others are built through MODELS under
    the meta device and need a Hugging Face ``config`` attribute.
    """
    import torch
    from transformers import PretrainedConfig

    from .components import build_model

    if is_estimable(cfg):
        return _meta_hf_model(lower_keys(cfg.MODEL))
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    except Exception as error:  # whatever failed, the user learns the same: no estimate for this model
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"parameters unknown for this model: {cfg.MODEL.NAME} cannot be built on the meta "
                          f"device ({reason})") from error
    if not isinstance(getattr(model, "config", None), PretrainedConfig):
        raise ConfigError(f"parameters unknown for this model: {cfg.MODEL.NAME} has no Hugging Face config "
                          f"(the estimate reads hidden size, layers and heads from one)")
    return model, model.config, "sequence-classification"


def _meta_hf_model(options: dict[str, Any]) -> tuple[Any, Any, str]:
    import torch
    import transformers

    from .models.hf_wrapper import DEFAULT_TASK, TASK_AUTO_CLASSES
    from .models.pretrained import resolve_pretrained
    from .peft.lora import apply_lora_from_config
    from .peft.params import freeze_parameters

    task = str(options.get("task") or options.get("model_type") or DEFAULT_TASK).lower().replace("_", "-")
    if task not in TASK_AUTO_CLASSES:
        raise ConfigError(f"MODEL.TASK '{task}' is unknown; choose one of: {', '.join(TASK_AUTO_CLASSES)}")
    trust = bool(options.get("trust_remote_code", False))
    directory = resolve_pretrained(options.get("pretrained", ""))
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True,
                                                     trust_remote_code=trust)
    for key, value in options.items():  # NUM_LABELS and other config fields, as from_pretrained applies them
        if key not in _WRAPPER_KEYS and hasattr(config, key):
            setattr(config, key, value)
    attention = options.get("attn_implementation")
    extra = {"attn_implementation": attention} if attention else {}
    dtype = _torch_dtype(options.get("torch_dtype", options.get("dtype")), config)
    with torch.device("meta"):
        model = getattr(transformers, TASK_AUTO_CLASSES[task]).from_config(
            config, dtype=dtype, trust_remote_code=trust, **extra)
    config = model.config
    if options.get("freeze"):
        freeze_parameters(model, options["freeze"])
    if options.get("lora") is not None:  # an empty section means LoRA with the defaults
        apply_lora_from_config(model, options["lora"])
    if options.get("peft") is not None:
        from .peft.hf_peft import apply_peft

        model = apply_peft(model, options["peft"], task=task)
    return model, config, task


def _torch_dtype(value: Any, config: Any) -> Any:
    """MODEL.TORCH_DTYPE as from_pretrained reads it: ``auto`` (its default) is the checkpoint's dtype."""
    import torch

    if value in (None, "auto"):
        value = getattr(config, "dtype", None) or torch.float32
    if isinstance(value, str):
        value = getattr(torch, value.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"MODEL.TORCH_DTYPE {value!r} is not a torch dtype; use bfloat16, float32 or auto")
    return value


def shape_of(model: Any, config: Any, task: str, layer_classes: Iterable[str] = ()) -> ModelShape:
    """The ModelShape of a built model (on any device) with its Hugging Face config."""
    from .engine.strategies.fsdp import block_class_names

    names = set(layer_classes) or block_class_names(model)
    blocks = [module for module in model.modules() if type(module).__name__ in names]
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    counts = [(_numel(b.parameters()), _numel(p for p in b.parameters() if p.requires_grad)) for b in blocks]
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, heads = text.hidden_size, text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    intermediate = getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden
    # a gated MLP has two hidden -> intermediate projections per block (leaf layers: PEFT wraps a base_layer)
    up = [m for m in (blocks[0] if blocks else model).modules() if getattr(m, "in_features", None) == hidden
          and getattr(m, "out_features", None) == intermediate and next(m.children(), None) is None]
    output = getattr(config, "num_labels", hidden) if "classification" in task else hidden
    return ModelShape(
        architecture=type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__,
        params=_numel(params), trainable=_numel(trainable),
        param_bytes=_bytes(params), trainable_bytes=_bytes(trainable),
        block_params=max((n for n, _ in counts), default=0),
        block_trainable=max((t for _, t in counts), default=0),
        root_params=max(_numel(params) - sum(n for n, _ in counts), 0),
        root_trainable=max(_numel(trainable) - sum(t for _, t in counts), 0),
        layers=len(blocks) or text.num_hidden_layers, hidden=hidden, heads=heads,
        kv_dim=(getattr(text, "num_key_value_heads", None) or heads) * head_dim, intermediate=intermediate,
        gated_mlp=len(up) >= 2, eager_attention=getattr(config, "_attn_implementation", "eager") == "eager",
        output_width=text.vocab_size if task in LM_TASKS else output,
        max_positions=getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None),
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what building a model on the meta device reports (weights not loaded, adapters added)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _numel(params: Iterable[Any]) -> int:
    return sum(p.numel() for p in params)


def _bytes(params: Iterable[Any]) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def lower_keys(section: Any) -> dict[str, Any]:
    """A config section as a dict with lower-case keys (an empty one for None)."""
    return {str(k).lower(): v for k, v in (section or {}).items()}
