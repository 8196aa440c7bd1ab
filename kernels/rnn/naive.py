"""Reference head-wise LSTM and sLSTM: plain loops over time, heads and gates that define the ops.

Layout (FlashRNN, Pöppel et al. 2024, NX-AI/flashrnn): the input projection is precomputed,
wx [B, T, 4, N, D] (gates i, f, z, o; N heads of dim D), recurrent weights are block-diagonal per
head, r [4, N, D, D] (rows index the previous hidden state: pre = h @ r[g, n]), bias b [4, N, D].
States stack on a leading axis, [S, B, N, D]: LSTM (h, c), sLSTM (h, c, n, m).

LSTM (Hochreiter & Schmidhuber 1997; gate order as torch.nn.LSTM's i, f, g, o):
    ĩ, f̃, z̃, õ = wx_t + h_{t-1} @ r + b            (per head)
    c_t = σ(f̃) c_{t-1} + σ(ĩ) tanh(z̃)
    h_t = σ(õ) tanh(c_t)

sLSTM (Beck et al., "xLSTM", arXiv 2405.04517, eqs. 8-17; exponential input gate, sigmoid forget
gate in log space, stabiliser m and normaliser n):
    m_t = max(log σ(f̃) + m_{t-1}, ĩ)               (m_t = ĩ when n_{t-1} = 0: an empty state)
    i_t = exp(ĩ − m_t),  f_t = exp(log σ(f̃) + m_{t-1} − m_t)   (f_t = 0 when n_{t-1} = 0)
    c_t = f_t c_{t-1} + i_t tanh(z̃),  n_t = f_t n_{t-1} + i_t
    h_t = σ(õ) c_t / n_t
The stabiliser cancels in c_t / n_t, so it is treated as a constant in the backward pass (as in
FlashRNN and xLSTM's kernels): this gives the exact gradient of h and of any function of the
(c, n, m) triple that depends on it only through c·e^m and n·e^m; the gradient w.r.t. the initial m
is zero.

Padding: where ``mask[b, t]`` is False the step is skipped, every state passes through unchanged
and h_t repeats h_{t-1}. States are float32 (float64 for float64 inputs); h has wx's dtype.
This file is slow on purpose: the fast paths are tested against it in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Number of stacked states per cell type.
NUM_STATES = {"lstm": 2, "slstm": 4}


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """States are kept in float32, or float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def initial_states(kind: str, wx: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
    """The states to start from, [S, B, N, D] in the state dtype (zeros when ``states`` is None)."""
    B, _, _, N, D = wx.shape
    dtype = state_dtype(wx.dtype)
    if states is None:
        return torch.zeros(NUM_STATES[kind], B, N, D, dtype=dtype, device=wx.device)
    return states.to(dtype)


def _lstm_cell(pre: list[torch.Tensor], c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    i, f, z, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2]), torch.sigmoid(pre[3])
    c_new = f * c + i * z
    return o * torch.tanh(c_new), c_new


def _slstm_cell(
    pre: list[torch.Tensor], c: torch.Tensor, n: torch.Tensor, m: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    empty = n == 0
    log_f = F.logsigmoid(pre[1])
    m_new = torch.where(empty, pre[0], torch.maximum(log_f + m, pre[0])).detach()
    i = torch.exp(pre[0] - m_new)
    # -inf (not 0 · exp(...)) for an empty state, so a huge exponent cannot turn into inf · 0 = NaN.
    f = torch.exp(torch.where(empty, float("-inf"), log_f + (m - m_new).detach()))
    c_new = f * c + i * torch.tanh(pre[2])
    n_new = f * n + i
    return torch.sigmoid(pre[3]) * c_new / n_new, c_new, n_new, m_new


def naive_rnn(
    kind: str,
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``kind`` ("lstm" or "slstm") over time; returns (h [B, T, N, D], final states [S, B, N, D])."""
    B, T, G, N, D = wx.shape
    dtype = state_dtype(wx.dtype)
    state = list(initial_states(kind, wx, states).unbind(0))  # S × (B, N, D)
    outputs = []
    for t in range(T):
        new_heads = []
        for head in range(N):
            prev = [s[:, head] for s in state]  # S × (B, D)
            pre = [
                wx[:, t, g, head].to(dtype) + prev[0] @ r[g, head].to(dtype) + b[g, head].to(dtype)
                for g in range(G)
            ]
            new = _lstm_cell(pre, prev[1]) if kind == "lstm" else _slstm_cell(pre, *prev[1:])
            if mask is not None:
                keep = mask[:, t, None]  # (B, 1)
                new = tuple(torch.where(keep, a, old) for a, old in zip(new, prev))
            new_heads.append(new)
        state = [torch.stack([heads[s] for heads in new_heads], dim=1) for s in range(len(state))]
        outputs.append(state[0])
    h = torch.stack(outputs, dim=1) if outputs else wx.new_zeros(B, 0, N, D, dtype=dtype)
    return h.to(wx.dtype), torch.stack(state)


def naive_lstm(
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-wise LSTM reference; states [2, B, N, D] = (h, c)."""
    return naive_rnn("lstm", wx, r, b, states, mask)


def naive_slstm(
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-wise sLSTM reference; states [4, B, N, D] = (h, c, n, m)."""
    return naive_rnn("slstm", wx, r, b, states, mask)
