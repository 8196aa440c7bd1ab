"""Gated linear attention, defined by a plain loop over time (the reference every fast path must match).

GLA (Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", ICML 2024,
arXiv 2312.06635) keeps a matrix state per head and decays each of its K rows by its own gate:

    S_t = diag(exp(g_t)) S_{t-1} + k_tᵀ v_t,        o_t = scale · q_t S_t

with ``g`` in natural-log space (``g = logsigmoid(x) / normaliser`` in fla's layer). Shapes and
conventions are flash-linear-attention's (``fla.ops.gla.naive.naive_recurrent_gla``), so either
library's outputs can be compared one to one:

    q, k, g: (B, T, H, K)    v: (B, T, H, V)    state: (N, H, K, V)

The loop computes in float32, or in float64 when any input is float64 (the tests' reference); the
output comes back in ``q``'s dtype and the state in the compute dtype. Autograd flows through the
loop, which makes this the slowest but most obviously correct path.
"""

from __future__ import annotations

import torch


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 when any input is float64, float32 otherwise (half precisions accumulate in fp32)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def _recurrent_one(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of equal-length sequences. q, k, g: (B, T, H, K); v: (B, T, H, V); state (B, H, K, V)."""
    outputs = []
    for t in range(q.shape[1]):
        decay = g[:, t].exp()  # (B, H, K)
        kv = k[:, t, :, :, None] * v[:, t, :, None, :]  # (B, H, K, V)
        state = decay[..., None] * state + kv
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, state))  # (B, H, V)
    if outputs:
        o = torch.stack(outputs, dim=1)  # (B, T, H, V)
    else:
        o = v.new_zeros(v.shape, dtype=state.dtype)
    return o, state


def naive_recurrent_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The GLA recurrence as a loop over time; see the module docstring for shapes.

    With ``cu_seqlens`` (int tensor of N + 1 offsets into a packed batch of size 1), each sequence
    runs separately from ``initial_state[i]`` (zeros when absent).
    """
    B, _, H, K = q.shape
    V = v.shape[-1]
    dtype = compute_dtype(q, k, v, g, initial_state)
    out_dtype = q.dtype
    scale = K**-0.5 if scale is None else scale
    q, k, v, g = (x.to(dtype) for x in (q, k, v, g))
    bounds = [0, q.shape[1]] if cu_seqlens is None else [int(x) for x in cu_seqlens.tolist()]
    N = B if cu_seqlens is None else len(bounds) - 1
    if initial_state is None:
        h0 = q.new_zeros(N, H, K, V)
    else:
        h0 = initial_state.to(dtype)

    if cu_seqlens is None:
        o, ht = _recurrent_one(q, k, v, g, scale, h0)
    else:
        outs, finals = [], []
        for i in range(N):
            lo, hi = bounds[i], bounds[i + 1]
            o_i, h_i = _recurrent_one(
                q[:, lo:hi], k[:, lo:hi], v[:, lo:hi], g[:, lo:hi], scale, h0[i : i + 1]
            )
            outs.append(o_i)
            finals.append(h_i)
        o = torch.cat(outs, dim=1)
        ht = torch.cat(finals, dim=0)
    return o.to(out_dtype), (ht if output_final_state else None)


def naive_gla_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    state: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step. q, k, g: (B, H, K); v: (B, H, V); state (B, H, K, V) -> (o (B, H, V), new state)."""
    dtype = state.dtype
    new_state = g.to(dtype).exp()[..., None] * state + k.to(dtype)[..., None] * v.to(dtype)[..., None, :]
    o = torch.einsum("bhk,bhkv->bhv", q.to(dtype) * scale, new_state)  # (B, H, V)
    return o, new_state
