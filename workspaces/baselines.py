"""Sequence-model baselines of the addition study (arXiv 2503.01906): an LSTM and a Transformer.

Both read the two addends as a length-2 sequence of feature vectors (B, 2, F) — the same one-hot
codes the workspace receives, or for images the same frozen digit representation — and classify
the sum over the number line (B, C). They are trained on exactly the same batches as the router.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _check_sequence(x: Tensor, features: int) -> None:
    if x.dim() != 3 or x.shape[-1] != features:
        raise ValueError(f"expected a (batch, length, {features}) sequence, got {tuple(x.shape)}")


class LSTMAdder(nn.Module):
    """Linear embedding → LSTM → linear classifier on the last hidden state."""

    def __init__(self, features: int, classes: int, embed: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.features = features
        self.embed = nn.Linear(features, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        _check_sequence(x, self.features)
        h, _ = self.lstm(self.embed(x))  # (B, L, H)
        return self.out(h[:, -1])  # (B, C)


class TransformerAdder(nn.Module):
    """Linear embedding + learned positions, a [CLS] token, pre-norm encoder layers, classifier on [CLS]."""

    def __init__(
        self,
        features: int,
        classes: int,
        d_model: int = 32,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 2,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.features, self.max_len = features, max_len
        self.embed = nn.Linear(features, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position = nn.Parameter(0.02 * torch.randn(1, max_len + 1, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, classes)

    def forward(self, x: Tensor) -> Tensor:
        _check_sequence(x, self.features)
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence of length {x.shape[1]} exceeds max_len {self.max_len}")
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), self.embed(x)], dim=1)  # (B, L+1, d)
        tokens = tokens + self.position[:, : tokens.shape[1]]
        h = self.encoder(tokens)  # (B, L+1, d)
        return self.out(self.norm(h[:, 0]))  # (B, C)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
