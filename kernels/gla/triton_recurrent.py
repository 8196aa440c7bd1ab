"""GLA as a recurrence over time inside one Triton program: ``fused_recurrent_gla`` and the decode step.

The GPU counterpart of :mod:`reasonkit.kernels.gla.fused_recurrent` (fla:
``fla/ops/gla/fused_recurrent.py``). One program per (V block, b·h) keeps its (K, BV) slice of the
state in registers and walks t = 0..T−1; nothing per step is written but the output. The backward
program walks forward again (dq, without the undecayed pair s = t) and then backward (dk without
undecayed pairs, dv, dh0), all in float32; dq and dk are partial sums over V blocks, added up
and completed on the host by :func:`~reasonkit.kernels.gla.fused_recurrent.complete_grads`.

The whole key dimension sits in one tile (K ≤ 256), so the output needs no cross-program sum.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from reasonkit.kernels.dispatch import KernelError
from reasonkit.kernels.gla.fused_recurrent import complete_grads
from reasonkit.kernels.gla.triton_chunk import check_triton_inputs

MAX_K = 256


@triton.jit(do_not_specialize=["T"])
def recurrent_fwd_kernel(
    q,
    k,
    v,
    g,
    o,
    h0,
    ht,
    scale,
    T,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    USE_H0: tl.constexpr,
    STORE_HT: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    state_offs = i_bh.to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]

    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + state_offs, mask=m_kv, other=0).to(tl.float32)
    for t in range(T):
        tok = (i_b.to(tl.int64) * T + t) * H + i_h
        b_q = tl.load(q + tok * K + o_k, mask=m_k, other=0).to(tl.float32) * scale
        b_k = tl.load(k + tok * K + o_k, mask=m_k, other=0).to(tl.float32)
        b_g = tl.load(g + tok * K + o_k, mask=m_k, other=0).to(tl.float32)
        b_v = tl.load(v + tok * V + o_v, mask=m_v, other=0).to(tl.float32)
        b_h = b_h * tl.exp(b_g)[:, None] + b_k[:, None] * b_v[None, :]
        b_o = tl.sum(b_h * b_q[:, None], axis=0)  # (BV,)
        tl.store(o + tok * V + o_v, b_o.to(o.dtype.element_ty), mask=m_v)
    if STORE_HT:
        tl.store(ht + state_offs, b_h, mask=m_kv)


@triton.jit(do_not_specialize=["T"])
def recurrent_bwd_kernel(
    q,
    k,
    v,
    g,
    do,
    h0,
    dht,
    dq,
    dk,
    dv,
    dh0,
    final_off,
    scale,
    T,
    B,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    USE_H0: tl.constexpr,
    USE_DHT: tl.constexpr,
    STORE_DH0: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    state_offs = i_bh.to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
    part = i_v.to(tl.int64) * B * T * H  # dq, dk hold one partial sum per V block

    # forward again: dq_t = scale · (exp(g_t) S_{t-1}) do_t, without the pair s = t
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + state_offs, mask=m_kv, other=0).to(tl.float32)
    for t in range(T):
        tok = (i_b.to(tl.int64) * T + t) * H + i_h
        b_k = tl.load(k + tok * K + o_k, mask=m_k, other=0).to(tl.float32)
        b_g = tl.load(g + tok * K + o_k, mask=m_k, other=0).to(tl.float32)
        b_v = tl.load(v + tok * V + o_v, mask=m_v, other=0).to(tl.float32)
        b_do = tl.load(do + tok * V + o_v, mask=m_v, other=0).to(tl.float32)
        b_h = b_h * tl.exp(b_g)[:, None]
        tl.store(dq + (part + tok) * K + o_k, tl.sum(b_h * b_do[None, :], axis=1) * scale, mask=m_k)
        if t == T - 1:
            tl.store(final_off + state_offs, b_h, mask=m_kv)
        b_h += b_k[:, None] * b_v[None, :]

    # backward in time: dS_t = scale · q_tᵀ do_t + exp(g_{t+1}) dS_{t+1}
    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    for r in range(T):
        t = T - 1 - r
        tok = (i_b.to(tl.int64) * T + t) * H + i_h
        b_q = tl.load(q + tok * K + o_k, mask=m_k, other=0).to(tl.float32) * scale
        b_k = tl.load(k + tok * K + o_k, mask=m_k, other=0).to(tl.float32)
        b_g = tl.load(g + tok * K + o_k, mask=m_k, other=0).to(tl.float32)
        b_v = tl.load(v + tok * V + o_v, mask=m_v, other=0).to(tl.float32)
        b_do = tl.load(do + tok * V + o_v, mask=m_v, other=0).to(tl.float32)
        tl.store(dk + (part + tok) * K + o_k, tl.sum(b_dh * b_v[None, :], axis=1), mask=m_k)
        if USE_DHT:  # noqa: SIM102 (a compile-time branch around a run-time one)
            if r == 0:
                b_dh += tl.load(dht + state_offs, mask=m_kv, other=0).to(tl.float32)
        b_dh += b_q[:, None] * b_do[None, :]
        tl.store(dv + tok * V + o_v, tl.sum(b_dh * b_k[:, None], axis=0).to(dv.dtype.element_ty), mask=m_v)
        b_dh = b_dh * tl.exp(b_g)[:, None]
    if STORE_DH0:
        tl.store(dh0 + state_offs, b_dh, mask=m_kv)


def _blocks(K: int, V: int) -> tuple[int, int]:
    if K > MAX_K:
        raise KernelError(
            f"fused_recurrent_gla: the Triton kernel holds the whole key dimension in one tile (K ≤ {MAX_K}), "
            f"got K={K}; use chunk_gla"
        )
    BK = triton.next_power_of_2(K)
    BV = min(triton.next_power_of_2(V), max(8, 4096 // BK))  # a (BK, BV) float32 tile: ≤ 32 registers/thread
    return BK, BV


class FusedRecurrentGLATriton(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        g: torch.Tensor,
        scale: float,
        initial_state: torch.Tensor | None,
        output_final_state: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v, g = (x.contiguous() for x in (q, k, v, g))
        h0 = None if initial_state is None else initial_state.contiguous()
        B, T, H, K = q.shape
        V = v.shape[-1]
        BK, BV = _blocks(K, V)
        o = torch.empty_like(v)
        ht = q.new_empty(B, H, K, V, dtype=torch.float32) if output_final_state else None
        recurrent_fwd_kernel[(triton.cdiv(V, BV), B * H)](
            q,
            k,
            v,
            g,
            o,
            h0,
            ht,
            scale,
            T,
            H,
            K,
            V,
            BK,
            BV,
            USE_H0=h0 is not None,
            STORE_HT=output_final_state,
        )
        ctx.save_for_backward(q, k, v, g, h0)
        ctx.scale = scale
        ctx.set_materialize_grads(False)
        return o, ht

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor | None, dht: torch.Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, g, h0 = ctx.saved_tensors
        scale = ctx.scale
        B, T, H, K = q.shape
        V = v.shape[-1]
        BK, BV = _blocks(K, V)
        NV = triton.cdiv(V, BV)
        do = torch.zeros_like(v) if do is None else do.contiguous()
        dq_part = q.new_empty(NV, B, T, H, K, dtype=torch.float32)
        dk_part = torch.empty_like(dq_part)
        dv = torch.empty_like(v)
        dh0 = q.new_empty(B, H, K, V, dtype=torch.float32) if h0 is not None else None
        final_off = q.new_zeros(B, H, K, V, dtype=torch.float32)
        recurrent_bwd_kernel[(NV, B * H)](
            q, k, v, g, do, h0, None if dht is None else dht.contiguous(), dq_part, dk_part, dv, dh0, final_off,
            scale, T, B, H, K, V, BK, BV,
            USE_H0=h0 is not None, USE_DHT=dht is not None, STORE_DH0=h0 is not None,
        )  # fmt: skip
        d_final = torch.zeros_like(final_off) if dht is None else dht.float()
        dq, dk, dg = complete_grads(
            q.float(),
            k.float(),
            v.float(),
            do.float(),
            dq_part.sum(0),
            dk_part.sum(0),
            final_off,
            d_final,
            scale,
        )
        if dh0 is not None and h0 is not None:
            dh0 = dh0.to(h0.dtype)
        return dq.to(q.dtype), dk.to(k.dtype), dv, dg.to(g.dtype), None, dh0, None


def fused_recurrent_gla_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Equal-length batch; validated inputs (see :func:`reasonkit.kernels.gla.fused_recurrent_gla`)."""
    check_triton_inputs("fused_recurrent_gla", q, g, initial_state)
    o, ht = FusedRecurrentGLATriton.apply(q, k, v, g, scale, initial_state, output_final_state)
    return o, ht
