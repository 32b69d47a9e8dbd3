"""TrainLab's own BERT classifier: loads Hugging Face BERT weights, optionally fuses tabular features."""

from __future__ import annotations

import copy
import os
import re
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from trainlab.errors import ConfigError, did_you_mean
from trainlab.peft.lora import apply_lora_from_config, merged_state_dict
from trainlab.registries import MODELS

from .bert_layers import BertModel, init_bert_weights
from .fusion import build_fusion
from .hf_weights import read_state_dict, write_state_dict
from .pretrained import load_preprocessors, log_load_summary, resolve_pretrained

_OWN_PREFIXES = ("bert.", "classifier.", "fusion.")


@MODELS.register_module()
class BertForSequenceClassification(nn.Module):
    """BERT + a linear classifier over the pooled [CLS] vector, optionally fused with tabular features.

    The architecture is the ``config.json`` of ``pretrained`` (or ``transformers.BertConfig`` defaults),
    with ``config_overrides`` (``hidden_size``, ``num_hidden_layers``, …) applied on top; weights load
    from the checkpoint in ``pretrained`` (``bert.``-prefixed or bare ``BertModel`` keys, e.g. MiniLM).
    Weights the checkpoint lacks (pooler, classifier, fusion) are initialised, logged and listed in
    ``newly_initialized``; with ``lora`` they stay trainable next to the LoRA weights.

    Args:
        tabular_dim: width of the ``tabular`` input; 0 makes this plain BERT.
        fusion: how tabular features join the text: ``"concat"`` (concatenate + MLP of width
            ``fusion_hidden``) or ``"gated"`` (a gated residual update of the text vector).
        dropout: dropout before the classifier (default: the config's classifier/hidden dropout).
        lora: a ``MODEL.LORA`` section (keys in :mod:`trainlab.peft.settings`).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        num_labels: int = 2,
        tabular_dim: int = 0,
        fusion: str = "concat",
        fusion_hidden: int = 256,
        dropout: float | None = None,
        lora: dict[str, Any] | None = None,
        **config_overrides: Any,
    ) -> None:
        super().__init__()
        directory = os.path.abspath(resolve_pretrained(pretrained)) if pretrained else None
        self.config = _bert_config(directory, num_labels, config_overrides)
        if dropout is None:
            dropout = self.config.classifier_dropout
        if dropout is None:
            dropout = self.config.hidden_dropout_prob
        self.config.classifier_dropout = dropout
        self.tabular_dim = int(tabular_dim)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(dropout)
        self.fusion = None
        width = self.config.hidden_size
        if self.tabular_dim > 0:
            self.fusion = build_fusion(fusion, width, self.tabular_dim, fusion_hidden, dropout)
            width = self.fusion.out_features
            self.config.update(
                {"tabular_dim": self.tabular_dim, "fusion": fusion, "fusion_hidden": fusion_hidden}
            )
        self.classifier = nn.Linear(width, num_labels)
        self.apply(partial(init_bert_weights, std=self.config.initializer_range))

        self.newly_initialized: list[str] = self.load_pretrained_weights(directory) if directory else []
        self.tokenizer = load_preprocessors(directory)[0] if directory else None
        self.base_model_cfg = {
            "NAME": type(self).__name__,
            "PRETRAINED": directory,
            "NUM_LABELS": num_labels,
            "TABULAR_DIM": self.tabular_dim,
            "FUSION": fusion,
            "FUSION_HIDDEN": fusion_hidden,
            "DROPOUT": dropout,
            **{key.upper(): value for key, value in config_overrides.items()},
        }
        if lora is not None:  # an empty section means LoRA with the defaults
            apply_lora_from_config(self, lora, always_trainable=self.newly_initialized)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        tabular: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        """Logits [B, num_labels] and, given ``labels`` [B], their cross-entropy ``loss``."""
        _, pooled = self.bert(input_ids, attention_mask, token_type_ids)  # pooled: [B, H]
        features = self.dropout(pooled)
        if self.fusion is not None:
            features = self.fusion(features, self._checked_tabular(tabular, features))
        elif tabular is not None:
            raise ConfigError(
                "the batch has 'tabular' features but the model was built with MODEL.TABULAR_DIM 0, so they "
                f"would be ignored; set MODEL.TABULAR_DIM to their width ({tabular.shape[-1]})"
            )
        logits = self.classifier(features)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _checked_tabular(self, tabular: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor:
        if tabular is None or tabular.shape != (features.shape[0], self.tabular_dim):
            got = "none" if tabular is None else f"shape {tuple(tabular.shape)}"
            raise ConfigError(
                f"the model expects 'tabular' features of shape [batch, {self.tabular_dim}] "
                f"(MODEL.TABULAR_DIM), got {got}; check the dataset's tabular columns"
            )
        return tabular.to(features.dtype)

    def load_pretrained_weights(self, directory: str) -> list[str]:
        """Copy matching weights from the Hugging Face checkpoint in ``directory``; return those not found."""
        checkpoint = {_own_name(name): tensor for name, tensor in read_state_dict(directory).items()}
        own = self.state_dict()
        usable = {name: t for name, t in checkpoint.items() if name in own and own[name].shape == t.shape}
        self.load_state_dict(usable, strict=False)
        newly_initialized = [name for name in own if name not in usable]
        unused = sorted(
            name for name in checkpoint if name not in usable and not name.endswith("position_ids")
        )
        log_load_summary(type(self).__name__, directory, newly_initialized, unused)
        return newly_initialized

    def save_pretrained(self, directory: str) -> str:
        """Write ``config.json``, ``model.safetensors`` (LoRA merged) and the tokenizer to ``directory``.

        Without tabular fusion the layout is Hugging Face's, so
        ``transformers.BertForSequenceClassification.from_pretrained(directory)`` loads it; with fusion
        only this class can load it (``PRETRAINED: directory``).
        """
        config = copy.deepcopy(self.config)
        config.architectures = [type(self).__name__]
        config.save_pretrained(directory)
        write_state_dict(merged_state_dict(self), directory)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(directory)
        return directory


def _bert_config(directory: str | None, num_labels: int, overrides: dict[str, Any]) -> BertConfig:
    known = set(BertConfig().to_dict())
    unknown = [key for key in overrides if key not in known]
    if unknown:
        hints = "".join(did_you_mean(key, known) for key in unknown)
        raise ConfigError(
            f"BertForSequenceClassification does not take MODEL keys "
            f"{', '.join(k.upper() for k in unknown)}{hints}; "
            f"besides its own arguments it accepts BertConfig fields such as HIDDEN_SIZE, NUM_HIDDEN_LAYERS"
        )
    config = BertConfig.from_pretrained(directory, local_files_only=True) if directory else BertConfig()
    config.update(overrides)
    config.num_labels = num_labels
    return config


def _own_name(name: str) -> str:
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)  # TF-era checkpoints
    name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
    return name if name.startswith(_OWN_PREFIXES) else f"bert.{name}"
