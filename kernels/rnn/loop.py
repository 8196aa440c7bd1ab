"""Head-wise LSTM / sLSTM in PyTorch: one batched matmul for all heads and gates per time step.

Same definition as :mod:`reasonkit.kernels.rnn.naive` (equations there), written out again on
purpose: a reference must not share code with what it checks. The loop over time stays
in Python because the recurrence is sequential, but each step is a single ``bmm`` over heads plus
elementwise gate math, and autograd provides the backward. Runs on any device; on CUDA the Triton
kernel (:mod:`reasonkit.kernels.rnn.fused`) replaces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reasonkit.kernels.rnn.naive import initial_states, state_dtype


def _lstm_step(pre: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    pi, pf, pz, po = pre.unbind(2)  # 4 × (B, N, D)
    c = torch.sigmoid(pf) * state[1] + torch.sigmoid(pi) * torch.tanh(pz)
    return torch.sigmoid(po) * torch.tanh(c), c


def _slstm_step(pre: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    pi, pf, pz, po = pre.unbind(2)  # 4 × (B, N, D)
    _, c, n, m = state
    empty = n == 0
    log_f = F.logsigmoid(pf)
    # The stabiliser is a constant for autograd; see the naive module for why that is exact.
    m_new = torch.where(empty, pi, torch.maximum(log_f + m, pi)).detach()
    i = torch.exp(pi - m_new)
    f = torch.exp(torch.where(empty, float("-inf"), log_f + (m - m_new).detach()))
    c_new = f * c + i * torch.tanh(pz)
    n_new = f * n + i
    return torch.sigmoid(po) * c_new / n_new, c_new, n_new, m_new


def torch_rnn(
    kind: str,
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``kind`` ("lstm" or "slstm"); returns (h [B, T, N, D], final states [S, B, N, D])."""
    B, T, G, N, D = wx.shape
    dtype = state_dtype(wx.dtype)
    state = tuple(initial_states(kind, wx, states).unbind(0))  # S × (B, N, D)
    # r[g, n, i, j] -> (N, D, G·D): h[n] @ r_cat[n] gives every gate of head n at once.
    r_cat = r.to(dtype).permute(1, 2, 0, 3).reshape(N, D, G * D)
    wxb = (wx.to(dtype) + b.to(dtype)).transpose(2, 3)  # (B, T, N, G, D)
    step = _lstm_step if kind == "lstm" else _slstm_step
    outputs = []
    for t in range(T):
        rec = torch.bmm(state[0].transpose(0, 1), r_cat)  # (N, B, G·D)
        pre = wxb[:, t] + rec.transpose(0, 1).reshape(B, N, G, D)  # (B, N, G, D)
        new = step(pre, state)  # S × (B, N, D)
        if mask is not None:
            keep = mask[:, t, None, None]  # (B, 1, 1)
            new = tuple(torch.where(keep, a, old) for a, old in zip(new, state))
        state = new
        outputs.append(state[0])
    h = torch.stack(outputs, dim=1) if outputs else wx.new_zeros(B, 0, N, D, dtype=dtype)
    return h.to(wx.dtype), torch.stack(state)
