"""The "attn" mixer: softmax attention with a sigmoid output gate, rotary positions, grouped-query heads.

Qiu et al., "Gated Attention for Large Language Models" (arXiv 2505.06708):
``Y = SDPA(Q, K, V) ⊙ σ(X W_θ)``, applied after attention and before the output projection, with
the gate computed from the layer's (normalised) input. As in Qwen3-Next the gate projection is
folded into ``q_proj``: per head it outputs the query followed by the gate logits — D of them
(``attn_gate="elementwise"``, the paper's best variant) or 1 (``"headwise"``).

The kernel is ``reasonkit.kernels.gated_attention`` (layout (B, T, H, D), bottom-right causal
alignment against a longer KV cache, key-padding mask, rows that see no key give 0).
"""

from __future__ import annotations

import torch
from torch import nn

from reasonkit.kernels import gated_attention
from reasonkit.models.gated_lm.cache import MixerCache
from reasonkit.models.gated_lm.configuration import GatedLMConfig
from reasonkit.models.gated_lm.layers import apply_rotary


class GatedAttentionMixer(nn.Module):
    """Gated multi-head attention over (B, T, hidden)."""

    def __init__(self, config: GatedLMConfig) -> None:
        super().__init__()
        assert config.head_dim is not None and config.num_kv_heads is not None
        hidden = config.hidden_size
        self.num_heads, self.num_kv_heads, self.head_dim = (
            config.num_heads,
            config.num_kv_heads,
            config.head_dim,
        )
        self.gate_dim = self.head_dim if config.attn_gate == "elementwise" else 1
        self.q_proj = nn.Linear(hidden, self.num_heads * (self.head_dim + self.gate_dim), bias=False)
        self.k_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None = None,
        cache: MixerCache | None = None,
        slot: int = 0,
    ) -> torch.Tensor:
        """x (B, T, hidden); rotary cos/sin (B, T, 1, D) -> (B, T, hidden).

        ``key_mask``: None, key padding (B, past + T) bool with the causal band aligned bottom-right,
        or one row per query (B, T, keys) bool that says everything (the white-box layer's masks).
        """
        B, T, _ = x.shape
        H, Hkv, D = self.num_heads, self.num_kv_heads, self.head_dim
        q_and_gate = self.q_proj(x).view(B, T, H, D + self.gate_dim)
        q, gate = q_and_gate[..., :D], q_and_gate[..., D:]  # (B, T, H, D), (B, T, H, D or 1)
        k = self.k_proj(x).view(B, T, Hkv, D)
        v = self.v_proj(x).view(B, T, Hkv, D)
        cos, sin = rotary
        # cos/sin are float32: under autocast the rotated q, k would leave v's (half) dtype behind
        q, k = apply_rotary(q, cos, sin).to(v.dtype), apply_rotary(k, cos, sin).to(v.dtype)
        if cache is not None:
            k, v = cache.update_kv(slot, k, v)  # (B, past + T, Hkv, D)
        causal = key_mask is None or key_mask.dim() == 2
        o = gated_attention(q, k, v, gate, causal=causal, attention_mask=key_mask)  # (B, T, H, D)
        return self.o_proj(o.reshape(B, T, H * D))
