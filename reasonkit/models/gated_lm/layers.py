"""Building blocks every GatedLM decoder layer shares: RMSNorm, the SwiGLU feed-forward, rotary embeddings.

- RMSNorm: Zhang & Sennrich, arXiv 1910.07467 (computed in float32, cast back).
- SwiGLU: Shazeer, "GLU Variants Improve Transformer", arXiv 2002.05202.
- Rotary position embeddings: Su et al., "RoFormer", arXiv 2104.09864 (rotate-half layout, as Llama).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused op; half precisions are normalised in float32 and cast back, as Llama's RMSNorm
        normed = F.rms_norm(x.to(torch.promote_types(x.dtype, torch.float32)), (x.shape[-1],), eps=self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` — the feed-forward half of every decoder layer."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class RotaryEmbedding(nn.Module):
    """cos/sin tables for integer positions; ``apply_rotary`` rotates q and k with them.

    Positions are per row (``(B, T)``) so left-padded rows start at position 0 at their first real
    token, exactly as when the row is run alone.
    """

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        # not persistent: derived from the config, so checkpoints stay free of it (and the model's
        # _init_weights refills it after from_pretrained builds the model on the meta device)
        self.register_buffer("inv_freq", self.compute_inv_freq(), persistent=False)

    def compute_inv_freq(self) -> torch.Tensor:
        return 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, T) -> cos, sin of shape (B, T, 1, head_dim), broadcast over heads."""
        freqs = position_ids.float()[..., None] * self.inv_freq  # (B, T, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)[:, :, None, :]  # (B, T, 1, D)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, T, H, D) by the tables from :class:`RotaryEmbedding`."""
    return x * cos + _rotate_half(x) * sin
