"""The "gla" mixer: gated linear attention with an output gate, laid out like fla's GLA layer.

Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", ICML 2024
(arXiv 2312.06635); the layout follows ``fla.layers.gla.GatedLinearAttention``:

    q, k = x W_q, x W_k                    (B, T, H, K),  K = hidden · expand_k / H
    v, g_out = x W_v, x W_g                (B, T, H, V),  V = hidden · expand_v / H
    g = logsigmoid(x W_lr1 W_lr2 + b) / normaliser     low-rank forget gate, (B, T, H, K)
    o = GLA(q, k, v, g)                    reasonkit.kernels.chunk_gla / gla_step
    y = W_o (RMSNorm_head(o) · swish(g_out))

Padding: at positions where ``token_mask`` is False, k and g are zeroed, so the state neither takes
the token in nor decays — a left-padded row ends its prompt with exactly the state it would have
alone. (fla instead unpads into ``cu_seqlens``; zeroing costs nothing extra and keeps the batch
rectangular for the kernels.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from reasonkit.kernels import chunk_gla, fused_recurrent_gla, gla_step
from reasonkit.models.gated_lm.cache import MixerCache
from reasonkit.models.gated_lm.configuration import GatedLMConfig
from reasonkit.models.gated_lm.layers import RMSNorm

# fla's layer runs the recurrent kernel up to 64 tokens and the chunkwise one beyond. On CPU the torch
# chunkwise path measured slower than the recurrent loop at every length we use (head dims <= 64,
# T <= 1024, forward and backward; see docs/models.md), so "auto" keeps the recurrence there.
CHUNK_MIN_LEN = 64


GLAKernel = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def pick_kernel(mode: str, x: torch.Tensor, seq_len: int) -> GLAKernel:
    """The GLA kernel for ``mode`` ("auto" | "chunk" | "fused_recurrent") on x's device."""
    if mode == "chunk" or (mode == "auto" and x.is_cuda and seq_len > CHUNK_MIN_LEN):
        return chunk_gla
    return fused_recurrent_gla


class GLAMixer(nn.Module):
    """Gated linear attention over (B, T, hidden); state per head (B, H, K, V) float32."""

    def __init__(self, config: GatedLMConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.num_heads
        self.key_dim, self.value_dim = config.gla_key_dim, config.gla_value_dim
        self.head_k_dim = self.key_dim // self.num_heads
        self.head_v_dim = self.value_dim // self.num_heads
        self.gate_logit_normalizer = config.gla_gate_logit_normalizer
        self.kernel_mode = config.gla_kernel

        self.q_proj = nn.Linear(hidden, self.key_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.key_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.value_dim, bias=False)
        self.g_proj = nn.Linear(hidden, self.value_dim, bias=False)  # output gate
        self.gk_proj = nn.Sequential(  # low-rank forget gate, as fla
            nn.Linear(hidden, config.gla_gate_low_rank_dim, bias=False),
            nn.Linear(config.gla_gate_low_rank_dim, self.key_dim, bias=True),
        )
        self.g_norm = RMSNorm(self.head_v_dim, eps=config.rms_norm_eps)
        self.o_proj = nn.Linear(self.value_dim, hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        cache: MixerCache | None = None,
        slot: int = 0,
    ) -> torch.Tensor:
        """x (B, T, hidden), token_mask (B, T) bool or None (all real) -> (B, T, hidden)."""
        q, k, v, g = self.project(x, token_mask)
        assert g is not None
        state = None
        if cache is not None:
            previous = cache.get_state(slot)
            state = None if previous is None else previous[0]  # (B, H, K, V) float32
        o, new_state = self.mix(q, k, v, g, state, keep_state=cache is not None)
        if cache is not None:
            assert new_state is not None
            cache.set_state(slot, (new_state,))
        return self.readout(x, o)

    # The three parts of forward, public for the white-box layer's latent depths (Think-at-Hard's GLA
    # rule re-reads depth 0's keys and decay: reasonkit.models.whitebox.gla_depth).
    def project(
        self, x: torch.Tensor, token_mask: torch.Tensor | None = None, decay: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """q, k (B, T, H, K), v (B, T, H, V) and the log decay g (B, T, H, K) (None unless ``decay``);
        k and g are zero at padding, so pads neither enter nor decay the state."""
        B, T, _ = x.shape
        H = self.num_heads
        q = self.q_proj(x).view(B, T, H, self.head_k_dim)  # (B, T, H, K)
        k = self.k_proj(x).view(B, T, H, self.head_k_dim)
        v = self.v_proj(x).view(B, T, H, self.head_v_dim)  # (B, T, H, V)
        g = None
        if decay:
            gk = self.gk_proj(x)
            # the log decay stays in at least float32: its cumulative sums are what a half dtype would ruin
            gk = gk.to(torch.promote_types(gk.dtype, torch.float32))
            g = F.logsigmoid(gk).view(B, T, H, self.head_k_dim) / self.gate_logit_normalizer
        if token_mask is not None:
            keep = token_mask[:, :, None, None]  # (B, T, 1, 1)
            k = k * keep.to(k.dtype)
            g = None if g is None else g * keep.to(g.dtype)
        return q, k, v, g

    def mix(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        g: torch.Tensor,
        state: torch.Tensor | None,
        keep_state: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """GLA over (B, T, H, ·) from ``state``: (o (B, T, H, V), the final state when ``keep_state``)."""
        if keep_state and q.shape[1] == 1:
            o1, new_state = gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], state)  # (B, H, V)
            return o1[:, None], new_state
        kernel = pick_kernel(self.kernel_mode, q, q.shape[1])
        return kernel(q, k, v, g, initial_state=state, output_final_state=keep_state)

    def readout(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The output gate and projection: x (B, T, hidden), o (B, T, H, V) -> (B, T, hidden)."""
        B, T, _ = x.shape
        gate = self.g_proj(x).view(B, T, self.num_heads, self.head_v_dim)
        o = self.g_norm(o) * F.silu(gate)  # (B, T, H, V)
        return self.o_proj(o.reshape(B, T, self.value_dim))
