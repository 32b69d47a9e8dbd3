"""Ways to combine a pooled text representation with a tabular feature vector before the classifier."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.errors import ConfigError, did_you_mean


class ConcatFusion(nn.Module):
    """``MLP([text; tabular])``: concatenate and mix with one hidden layer; out width ``hidden``."""

    def __init__(self, text_dim: int, tabular_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(text_dim + tabular_dim, hidden)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.out_features = hidden

    def forward(self, text: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.activation(self.dense(torch.cat([text, tabular], dim=-1))))


class GatedFusion(nn.Module):
    """``LayerNorm(text + g ⊙ W tabular)`` with a gate ``g = sigmoid(G [text; tabular])`` per text feature.

    The text representation passes through unchanged where the gate closes, so the tabular features
    adjust the pretrained representation instead of replacing it; out width stays ``text_dim``.
    """

    def __init__(self, text_dim: int, tabular_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(tabular_dim, hidden), nn.GELU(), nn.Linear(hidden, text_dim))
        self.gate = nn.Linear(text_dim + tabular_dim, text_dim)
        self.LayerNorm = nn.LayerNorm(text_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_features = text_dim

    def forward(self, text: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate(torch.cat([text, tabular], dim=-1)))  # [B, text_dim]
        return self.LayerNorm(text + self.dropout(gate * self.project(tabular)))


FUSIONS = {"concat": ConcatFusion, "gated": GatedFusion}


def build_fusion(name: str, text_dim: int, tabular_dim: int, hidden: int, dropout: float) -> nn.Module:
    """The fusion module called ``name`` (``MODEL.FUSION``)."""
    if name not in FUSIONS:
        raise ConfigError(
            f"MODEL.FUSION '{name}' is unknown{did_you_mean(name, FUSIONS)}; "
            f"choose one of: {', '.join(FUSIONS)}"
        )
    return FUSIONS[name](text_dim, tabular_dim, hidden, dropout)
