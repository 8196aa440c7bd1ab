"""The "slstm" mixer: head-wise sLSTM with block-diagonal recurrent weights (FlashRNN layout).

Beck et al., "xLSTM: Extended Long Short-Term Memory" (arXiv 2405.04517), sLSTM cell with an
exponential input gate, a stabiliser m and a normaliser n; the recurrence runs on
``reasonkit.kernels.slstm`` / ``slstm_step`` (Pöppel et al.'s FlashRNN layout):

    wx = x W_in                   (B, T, 4, N, D)   gates i, f, z, o; N heads of width D
    h  = sLSTM(wx, r, b)          (B, T, N, D)      r (4, N, D, D) block-diagonal, b (4, N, D)
    y  = W_o RMSNorm_head(h)

As in xLSTM, the input projection is dense and the recurrent one block-diagonal per head; a
per-head norm precedes the output projection (xLSTM uses a group norm and no output projection;
here the mixer gets one like every other mixer, so all three write to the residual stream alike).
Forget-gate biases start in [3, 6] (long memory at init, xLSTM's choice); other biases at 0.

Padding: the kernel's ``mask`` skips the step at pads, so every state passes through unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from reasonkit.kernels import slstm, slstm_step
from reasonkit.models.gated_lm.cache import MixerCache
from reasonkit.models.gated_lm.configuration import GatedLMConfig
from reasonkit.models.gated_lm.layers import RMSNorm

FORGET_BIAS_RANGE = (3.0, 6.0)


class SLSTMMixer(nn.Module):
    """Multi-head sLSTM over (B, T, hidden); states (h, c, n, m) per head, float32."""

    def __init__(self, config: GatedLMConfig) -> None:
        super().__init__()
        assert config.slstm_num_heads is not None
        hidden = config.hidden_size
        self.num_heads = config.slstm_num_heads
        self.head_dim = hidden // self.num_heads
        self.initializer_range = config.initializer_range
        N, D = self.num_heads, self.head_dim
        self.in_proj = nn.Linear(hidden, 4 * hidden, bias=False)
        self.recurrent_weight = nn.Parameter(torch.empty(4, N, D, D))  # block-diagonal R per gate and head
        self.recurrent_bias = nn.Parameter(torch.empty(4, N, D))
        self.h_norm = RMSNorm(D, eps=config.rms_norm_eps)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.reset_recurrent_parameters()

    def reset_recurrent_parameters(self) -> None:
        """Small random R; forget-gate biases spread over [3, 6] per head channel, the rest 0."""
        init.normal_(self.recurrent_weight, mean=0.0, std=self.initializer_range)
        lo, hi = FORGET_BIAS_RANGE
        bias = torch.zeros_like(self.recurrent_bias, device="cpu")
        bias[1] = torch.linspace(lo, hi, self.head_dim)  # gate order i, f, z, o
        init.copy_(self.recurrent_bias, bias.to(self.recurrent_bias.device))

    def forward(
        self,
        x: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        cache: MixerCache | None = None,
        slot: int = 0,
    ) -> torch.Tensor:
        """x (B, T, hidden), token_mask (B, T) bool or None (all real) -> (B, T, hidden)."""
        B, T, hidden = x.shape
        wx = self.in_proj(x).view(B, T, 4, self.num_heads, self.head_dim)  # (B, T, 4, N, D)
        r, b = self.recurrent_weight.to(wx.dtype), self.recurrent_bias.to(wx.dtype)
        states = None
        previous = cache.get_state(slot) if cache is not None else None
        if previous is not None:
            states = previous[0].movedim(0, 1)  # (4, B, N, D)
        if cache is not None and T == 1 and token_mask is None:
            h1, final = slstm_step(wx[:, 0], r, b, states)  # (B, N, D)
            h = h1[:, None]
        else:
            h, final = slstm(wx, r, b, states, mask=token_mask)  # (B, T, N, D)
        if cache is not None:
            cache.set_state(slot, (final.movedim(1, 0),))  # batch-first for the cache's row surgery
        return self.o_proj(self.h_norm(h).reshape(B, T, hidden))
