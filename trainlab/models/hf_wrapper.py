"""Any Hugging Face ``AutoModel*`` from a local directory (or cached hub id), with its tokenizer/processor."""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import transformers
from torch import nn

from trainlab.errors import ConfigError, did_you_mean
from trainlab.peft.lora import apply_lora_from_config, lora_modules, merged_state_dict
from trainlab.peft.params import describe_trainable, freeze_parameters
from trainlab.registries import MODELS

from .pretrained import check_weights, load_preprocessors, log_load_summary, quiet_hf, resolve_pretrained
from .skeleton import building_skeleton

logger = logging.getLogger(__name__)

# MODEL.TASK -> the transformers Auto class that builds the model with the right head
TASK_AUTO_CLASSES = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "causal-lm": "AutoModelForCausalLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
    "clip": "AutoModel",  # CLIP-style dual encoders (CLIPModel, ChineseCLIPModel, …) are their own base class
}
DEFAULT_TASK = "sequence-classification"


@MODELS.register_module()
class TransformersModelWrapper(nn.Module):
    """A Hugging Face model chosen by ``task`` and loaded from ``pretrained``, plus its tokenizer / processor.

    ``forward(**batch)`` calls the wrapped model, so batches and outputs are Hugging Face's. Keys the
    constructor does not name (``num_labels``, ``torch_dtype``, ``attn_implementation``, …) go to
    ``from_pretrained``; ``model_type`` is accepted as an alias of ``task``. Nothing is downloaded.

    Args:
        task: ``base``, ``sequence-classification``, ``token-classification``, ``causal-lm``,
            ``seq2seq`` or ``clip``.
        freeze: name patterns of parameters to freeze, e.g. ``["bert.embeddings.*"]``.
        compile: compile the model with ``torch.compile`` on its first call (state-dict names unchanged).
        lora: a ``MODEL.LORA`` section: TrainLab's own LoRA (keys in :mod:`trainlab.peft.settings`).
        peft: a ``MODEL.PEFT`` section: Hugging Face PEFT. Its LoRA keys are MODEL.LORA's, with the same
            meaning and defaults; PEFT-only fields and other METHODs pass through (see ``apply_peft``).
    """

    @classmethod
    def config_errors(cls, pretrained: str = "", **options: Any) -> list[str]:
        """A MODEL.PRETRAINED that is not a local folder or cached hub model, or holds no readable weights; found
        from the files alone (safetensors headers), before anything loads."""
        try:
            check_weights(os.path.abspath(resolve_pretrained(pretrained)))
        except ConfigError as error:
            return [str(error)]
        return []

    def __init__(
        self,
        pretrained: str,
        task: str | None = None,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        freeze: list[str] | None = None,
        compile: bool = False,
        lora: dict[str, Any] | None = None,
        peft: dict[str, Any] | None = None,
        **from_pretrained_kwargs: Any,
    ) -> None:
        super().__init__()
        if lora is not None and peft is not None:
            raise ConfigError("MODEL.LORA and MODEL.PEFT are both set; keep one of them")
        self.task = _normalize_task(task, from_pretrained_kwargs.pop("model_type", None))
        directory = os.path.abspath(resolve_pretrained(pretrained))
        self.model, self.newly_initialized = _load_model(
            directory, self.task, trust_remote_code, from_pretrained_kwargs
        )
        self.tokenizer, self.processor = load_preprocessors(directory, trust_remote_code)
        self.base_model_cfg = {
            "NAME": type(self).__name__,
            "PRETRAINED": directory,
            "TASK": self.task,
            "TRUST_REMOTE_CODE": trust_remote_code,
            **{key.upper(): value for key, value in from_pretrained_kwargs.items()},
        }
        if gradient_checkpointing:
            # non-reentrant checkpointing also works when the embeddings are frozen (LoRA, FREEZE)
            options = {"use_reentrant": False}
            if hasattr(self.model, "activation_checkpointing_enable"):  # the name since transformers 5
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
        if freeze:
            freeze_parameters(self.model, freeze)
        if lora is not None:  # an empty section means LoRA with the defaults
            apply_lora_from_config(self.model, lora, always_trainable=self.newly_initialized)
        if peft is not None:
            from trainlab.peft.hf_peft import apply_peft

            self.model = apply_peft(self.model, peft, task=self.task)
        if compile:
            self.model.compile()
        logger.info("%s (%s): %s", type(self.model).__name__, self.task, describe_trainable(self))

    @property
    def config(self) -> Any:
        """The wrapped model's ``PretrainedConfig``."""
        return self.model.config

    @property
    def uses_peft(self) -> bool:
        return hasattr(self.model, "peft_config")

    def forward(self, *args: Any, **batch: Any) -> Any:
        return self.model(*args, **batch)

    def save_pretrained(self, directory: str, state_dict: dict[str, Any] | None = None) -> str:
        """Save the full model (LoRA / PEFT merged) and its tokenizer / processor in Hugging Face layout.

        Plain ``AutoModel*.from_pretrained(directory)`` loads the result; the wrapped model is not changed.
        ``state_dict``: this wrapper's full state, gathered by a sharded strategy; merged from the tensors
        rather than from the (sharded) modules. Use :meth:`save_adapter` to save only the adapter.
        """
        with quiet_hf():
            if state_dict is not None:
                from trainlab.peft.state_merge import merged_state_dict_from

                inner = {key.removeprefix("model."): value for key, value in state_dict.items() if key.startswith("model.")}
                base = self.model.get_base_model() if self.uses_peft else self.model
                base.save_pretrained(directory, state_dict=merged_state_dict_from(self.model, inner))
            elif self.uses_peft:
                from trainlab.peft.hf_peft import merge_and_save

                merge_and_save(copy.deepcopy(self.model), directory)
            elif lora_modules(self.model):
                self.model.save_pretrained(directory, state_dict=merged_state_dict(self.model))
            else:
                self.model.save_pretrained(directory)
            for component in (self.tokenizer, self.processor):
                if component is not None:
                    component.save_pretrained(directory)
        return directory

    def save_adapter(self, directory: str) -> str:
        """Save only the adapter: PEFT's layout for MODEL.PEFT, TrainLab's for MODEL.LORA."""
        from trainlab.peft.adapter import save_adapter

        return save_adapter(self, directory)


def _normalize_task(task: str | None, model_type: str | None) -> str:
    if task and model_type and task != model_type:
        raise ConfigError(
            f"MODEL.TASK '{task}' and its alias MODEL.MODEL_TYPE '{model_type}' disagree; keep one"
        )
    name = (task or model_type or DEFAULT_TASK).lower().replace("_", "-")
    if name not in TASK_AUTO_CLASSES:
        raise ConfigError(
            f"MODEL.TASK '{task or model_type}' is unknown{did_you_mean(name, TASK_AUTO_CLASSES)}; "
            f"choose one of: {', '.join(TASK_AUTO_CLASSES)}"
        )
    return name


def keys_missing_from(directory: str, model: nn.Module) -> list[str]:
    """State keys of ``model`` that the safetensors files in ``directory`` lack (read from their headers only),
    allowing for the base-model prefix and for tied parameters."""
    from safetensors import safe_open

    saved: set[str] = set()
    for name in os.listdir(directory):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(directory, name), framework="pt") as handle:
                saved.update(handle.keys())
    prefix = getattr(model, "base_model_prefix", "")
    present = {key for key in model.state_dict()
               if key in saved or key.removeprefix(f"{prefix}.") in saved or f"{prefix}.{key}" in saved}
    by_tensor: dict[int, list[str]] = {}
    for key, param in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(param), []).append(key)
    tied = {key for keys in by_tensor.values() if present & set(keys) for key in keys}
    return sorted(key for key, _ in model.named_parameters() if key not in present | tied)


def _load_model(
    directory: str, task: str, trust_remote_code: bool, kwargs: dict[str, Any]
) -> tuple[nn.Module, list[str]]:
    auto_class = getattr(transformers, TASK_AUTO_CLASSES[task])
    check_weights(directory)  # transformers would fail on missing or damaged weights with a long traceback
    if building_skeleton():  # a sharded run's other ranks: the structure only, rank 0 sends the weights
        config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=trust_remote_code, local_files_only=True,
                                                         **{k: v for k, v in kwargs.items() if k != "torch_dtype"})
        with quiet_hf():
            model = auto_class.from_config(config, trust_remote_code=trust_remote_code)
        return model, keys_missing_from(directory, model)  # what rank 0's load reports as newly initialised
    with quiet_hf():
        try:
            model, info = auto_class.from_pretrained(
                directory,
                trust_remote_code=trust_remote_code,
                local_files_only=True,
                output_loading_info=True,
                **kwargs,
            )
        except ValueError as error:  # e.g. a CLIP checkpoint asked for as sequence-classification
            raise ConfigError(
                f"cannot load '{directory}' with {auto_class.__name__} (MODEL.TASK '{task}'): {error}. "
                f"Check MODEL.TASK (one of {', '.join(TASK_AUTO_CLASSES)}) and the extra MODEL keys"
            ) from error
    newly_initialized = sorted(info["missing_keys"])
    log_load_summary(type(model).__name__, directory, newly_initialized, sorted(info["unexpected_keys"]))
    return model, newly_initialized
