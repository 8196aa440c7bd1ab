"""Fused head-wise LSTM / sLSTM for CUDA: launches the Triton kernels and wires them into autograd.

Kernels: :mod:`reasonkit.kernels.rnn.fused_kernels`. One program per (head, 16 batch rows) runs
the whole sequence, so the grid is small (N · ⌈B/16⌉ programs): the speed-up over the torch loop
comes from replacing ~15 kernel launches per time step by one launch in total, and from keeping
the recurrent weights on chip. Best for head dims D ≤ 64 (bf16 up to 128), where the four D×D
tiles stay on chip; beyond that they are re-read from L2 every step.
"""

from __future__ import annotations

from typing import Any

import torch
import triton

from reasonkit.kernels.rnn import fused_kernels as fk
from reasonkit.kernels.rnn.naive import initial_states

_BLOCK_B = 16  # tl.dot needs M >= 16; smaller batches are padded with masked rows


def _launch_params(r: torch.Tensor, D: int) -> dict[str, Any]:
    block_d = max(16, triton.next_power_of_2(D))
    weight_bytes = 4 * block_d * block_d * r.element_size()  # the four r[g, head] tiles
    # From ptxas on sm_90: bf16 D = 64 needs 8 warps to stay under 255 registers/thread without
    # spills; fp32 D = 128 (256 KB) exceeds shared memory, so its tiles are reloaded every step;
    # software pipelining (prefetching the next steps' loads) fits in shared memory only next to
    # small tiles: at 3 stages the bf16 D = 128 backward would need 360 KB.
    small = weight_bytes <= 32 * 1024
    return {
        "PRECISION": "tf32x3" if r.dtype == torch.float32 else "tf32",  # fp32: near-IEEE on tensor cores
        "RESIDENT": weight_bytes <= 128 * 1024,
        "BLOCK_B": _BLOCK_B,
        "BLOCK_D": block_d,
        "num_warps": 4 if weight_bytes <= 16 * 1024 else 8,
        "num_stages": 2 if small else 1,
    }


class _FusedRNN(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        wx: torch.Tensor,
        r: torch.Tensor,
        b: torch.Tensor,
        states: torch.Tensor,
        mask: torch.Tensor | None,
        slstm: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, G, N, D = wx.shape
        dev = wx.device
        store = any(ctx.needs_input_grad[:4])  # what the backward needs is only kept when it will run
        h = torch.empty(B, T, N, D, dtype=wx.dtype, device=dev)
        final = torch.empty_like(states)
        seq = (B, T, N, D) if store else (0, 1, 1, 1)
        gates = torch.empty((B, T, G, N, D) if store else (0, 1, 1, 1, 1), dtype=torch.float32, device=dev)
        c_all = torch.empty(seq, dtype=torch.float32, device=dev)
        n_all = torch.empty(seq if slstm else (0, 1, 1, 1), dtype=torch.float32, device=dev)
        m_all = torch.empty_like(n_all)
        grid = (N, triton.cdiv(B, _BLOCK_B))
        fk.rnn_fwd_kernel[grid](
            wx, r, b, states, wx if mask is None else mask, h, final, gates, c_all, n_all, m_all,
            wx.stride(0), wx.stride(1), wx.stride(2), wx.stride(3),
            r.stride(0), r.stride(1), r.stride(2),
            b.stride(0), b.stride(1),
            states.stride(0), states.stride(1), states.stride(2),
            0 if mask is None else mask.stride(0), 0 if mask is None else mask.stride(1),
            h.stride(0), h.stride(1), h.stride(2),
            *(gates.stride()[:4] if store else (0, 0, 0, 0)),
            B, T, D,
            SLSTM=slstm, HAS_MASK=mask is not None, STORE=store, **_launch_params(r, D),
        )  # fmt: skip
        ctx.save_for_backward(r, states, mask, h, gates, c_all, n_all, m_all)
        ctx.slstm = slstm
        return h, final

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, dh: torch.Tensor | None, dfinal: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        r, states, mask, h, gates, c_all, n_all, m_all = ctx.saved_tensors
        B, T, _, N, D = gates.shape
        dh = torch.zeros_like(h, dtype=torch.float32) if dh is None else dh.float().contiguous()
        dfinal = torch.zeros_like(states) if dfinal is None else dfinal.float().contiguous()
        dwx = torch.empty_like(gates)  # (B, T, 4, N, D) fp32
        dstates = torch.empty_like(states)
        fk.rnn_bwd_kernel[(N, triton.cdiv(B, _BLOCK_B))](
            r, states, h if mask is None else mask, gates, c_all, n_all, m_all, dh, dfinal, dwx, dstates,
            r.stride(0), r.stride(1), r.stride(2),
            states.stride(0), states.stride(1), states.stride(2),
            0 if mask is None else mask.stride(0), 0 if mask is None else mask.stride(1),
            c_all.stride(0), c_all.stride(1), c_all.stride(2),
            *gates.stride()[:4],
            B, T, D,
            SLSTM=ctx.slstm, HAS_MASK=mask is not None, **_launch_params(r, D),
        )  # fmt: skip
        # pre_t = wx_t + h_{t-1} @ r + b, with h_{t-1} in the dtype the forward multiplied in.
        h0 = states[0].to(h.dtype)[:, None]  # (B, 1, N, D)
        h_prev = torch.cat([h0, h[:, :-1]], dim=1).float()  # (B, T, N, D)
        dr = torch.einsum("btni,btgnj->gnij", h_prev, dwx)
        db = dwx.sum(dim=(0, 1))
        return dwx.to(h.dtype), dr.to(r.dtype), db.to(r.dtype), dstates, None, None


def fused_rnn(
    kind: str,
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused Triton LSTM / sLSTM; arguments and results as :func:`reasonkit.kernels.rnn.lstm`."""
    s0 = initial_states(kind, wx, states).contiguous()  # (S, B, N, D) fp32; autograd sees the cast
    m8 = None if mask is None else mask.to(torch.int8)
    wx = wx if wx.stride(-1) == 1 else wx.contiguous()
    return _FusedRNN.apply(wx, r.contiguous(), b.contiguous(), s0, m8, kind == "slstm")
