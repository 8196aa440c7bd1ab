"""Triton kernels for the chunkwise GLA backward.

The math is :class:`reasonkit.kernels.gla.chunk.ChunkGLA.backward` (and fla's ``chunk_gla_bwd``),
with the chunk states h recomputed by :func:`~reasonkit.kernels.gla.triton_chunk_fwd.chunk_states`:

1. ``state_grads``: walking the chunks backward, dh[n] = gradient w.r.t. the state leaving chunk n
   (B, NT, H, K, V); then dh0.
2. ``attention_grad``: dA = tril(do @ vᵀ) per chunk, float32 (B, T, H, BT).
3. ``value_grad``: dv = Aᵀ @ do + (k ⊙ exp(b_C − b)) @ dh[n].
4. ``intra_qk_grads``: per 16-row sub-chunk, the parts of dq, dk that come through A, without the
   undecayed pairs s = t: blocks off the diagonal by dots against a reference row of b that lies
   between query and key (first query row for dq, last key row for dk), so all exponents are ≤ 0;
   the diagonal block column by column in log space.
5. ``qk_gate_grads``: adds the inter-chunk parts (do @ hᵀ, v @ dhᵀ), forms the gate gradient
   dg = reverse-cumsum within the chunk of q·dq − k·dk plus Σ_v S_{n+1} ⊙ dS_{n+1}, then adds the
   diagonal pairs to dq and dk (see ``fused_recurrent.py`` for why they are kept out of dg).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from reasonkit.kernels.gla.triton_chunk_fwd import (
    block_size,
    dot_precision,
    row_in_range,
    state_blocks,
    tuned,
)


@tuned("K", "V", "BT", "BK", "BV")
@triton.jit(do_not_specialize=["T", "NT"])
def state_grads_kernel(
    q,
    do,
    gc,
    dht,
    dh,
    dh0,
    scale,
    T,
    NT,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    USE_DHT: tl.constexpr,
    STORE_DH0: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    state_offs = o_k[:, None] * V + o_v[None, :]
    dtype = do.dtype.element_ty

    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        b_dh += tl.load(dht + i_bh.to(tl.int64) * K * V + state_offs, mask=m_kv, other=0).to(tl.float32)
    for i_r in range(NT):
        i_t = NT - 1 - i_r
        base = ((i_b.to(tl.int64) * NT + i_t) * H + i_h) * K * V
        tl.store(dh + base + state_offs, b_dh.to(dh.dtype.element_ty), mask=m_kv)
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        tok = (i_b.to(tl.int64) * T + o_t) * H + i_h
        last = (i_b.to(tl.int64) * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h
        m_kt = (o_k[:, None] < K) & m_t[None, :]
        b_qt = tl.load(q + tok[None, :] * K + o_k[:, None], mask=m_kt, other=0).to(tl.float32)  # (BK, BT)
        b_gt = tl.load(gc + tok[None, :] * K + o_k[:, None], mask=m_kt, other=0)
        b_glast = tl.load(gc + last * K + o_k, mask=o_k < K, other=0)
        b_do = tl.load(do + tok[:, None] * V + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < V), other=0)
        b_qg = (b_qt * scale * tl.exp(b_gt)).to(dtype)
        b_dh = b_dh * tl.exp(b_glast)[:, None] + tl.dot(b_qg, b_do, input_precision=DOT_PRECISION)
    if STORE_DH0:
        tl.store(dh0 + i_bh.to(tl.int64) * K * V + state_offs, b_dh, mask=m_kv)


@tuned("V", "BT", "BV")
@triton.jit(do_not_specialize=["T"])
def attention_grad_kernel(
    v,
    do,
    dA,
    T,
    H: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_t, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    tok = (i_b.to(tl.int64) * T + o_t) * H + i_h
    b_dA = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m = m_t[:, None] & (o_v[None, :] < V)
        b_do = tl.load(do + tok[:, None] * V + o_v[None, :], mask=m, other=0)  # (BT, BV)
        b_vt = tl.load(v + tok[None, :] * V + o_v[:, None], mask=m_t[None, :] & (o_v[:, None] < V), other=0)
        b_dA += tl.dot(b_do, b_vt, input_precision=DOT_PRECISION)
    o_c = tl.arange(0, BT)
    b_dA = tl.where(o_c[:, None] >= o_c[None, :], b_dA, 0)
    tl.store(dA + tok[:, None] * BT + o_c[None, :], b_dA, mask=m_t[:, None])


@tuned("K", "V", "BT", "BK", "BV")
@triton.jit(do_not_specialize=["T", "NT"])
def value_grad_kernel(
    k,
    do,
    gc,
    A,
    dh,
    dv,
    T,
    NT,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    tok = (i_b.to(tl.int64) * T + o_t) * H + i_h
    last = (i_b.to(tl.int64) * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h
    base = ((i_b.to(tl.int64) * NT + i_t) * H + i_h) * K * V
    dtype = do.dtype.element_ty

    b_do = tl.load(do + tok[:, None] * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0)
    o_c = tl.arange(0, BT)
    b_At = tl.load(A + tok[None, :] * BT + o_c[:, None], mask=m_t[None, :], other=0)  # (BT keys, BT queries)
    b_dv = tl.dot(b_At.to(dtype), b_do, input_precision=DOT_PRECISION)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        m = m_t[:, None] & m_k[None, :]
        b_k = tl.load(k + tok[:, None] * K + o_k[None, :], mask=m, other=0).to(tl.float32)
        b_g = tl.load(gc + tok[:, None] * K + o_k[None, :], mask=m, other=0)
        b_glast = tl.load(gc + last * K + o_k, mask=m_k, other=0)
        b_dh = tl.load(dh + base + o_k[:, None] * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0)
        b_kd = tl.where(m, b_k * tl.exp(b_glast[None, :] - b_g), 0).to(dtype)
        b_dv += tl.dot(b_kd, b_dh.to(dtype), input_precision=DOT_PRECISION)
    tl.store(
        dv + tok[:, None] * V + o_v[None, :], b_dv.to(dv.dtype.element_ty), mask=m_t[:, None] & m_v[None, :]
    )


@tuned("K", "BT", "BK")
@triton.jit(do_not_specialize=["T"])
def intra_qk_grads_kernel(
    q,
    k,
    gc,
    dA,
    dq,
    dk,
    scale,
    T,
    H: tl.constexpr,
    K: tl.constexpr,
    BT: tl.constexpr,
    BC: tl.constexpr,
    BK: tl.constexpr,
    NC: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_k, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_t, i_i = i_c // NC, i_c % NC
    i_b, i_h = i_bh // H, i_bh % H
    t0 = i_t * BT + i_i * BC
    if t0 >= T:
        return
    o_c = tl.arange(0, BC)
    o_r = t0 + o_c
    m_r = o_r < T
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    m = m_r[:, None] & m_k[None, :]
    seq = i_b.to(tl.int64) * T
    rows = (seq + o_r) * H + i_h  # (BC,)
    dtype = k.dtype.element_ty

    b_g = tl.load(gc + rows[:, None] * K + o_k[None, :], mask=m, other=0)

    # dq: this sub-chunk's queries against keys of earlier sub-chunks, reference = first query row
    b_gn = tl.load(gc + ((seq + t0) * H + i_h) * K + o_k, mask=m_k, other=0)
    b_dq = tl.zeros([BC, BK], dtype=tl.float32)
    for i_j in range(i_i):
        cols = (seq + i_t * BT + i_j * BC + o_c) * H + i_h
        b_kj = tl.load(k + cols[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0).to(tl.float32)
        b_gj = tl.load(gc + cols[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0)
        b_kr = (b_kj * tl.exp(b_gn[None, :] - b_gj)).to(dtype)
        b_dA = tl.load(dA + rows[:, None] * BT + i_j * BC + o_c[None, :], mask=m_r[:, None], other=0)
        b_dq += tl.dot(b_dA.to(dtype), b_kr, input_precision=DOT_PRECISION)
    b_dq = tl.where(m, b_dq * tl.exp(b_g - b_gn[None, :]), 0)
    for j in range(BC):  # diagonal block, keys s = t0 + j < t
        key = (seq + t0 + j) * H + i_h
        m_key = m_k & row_in_range(t0 + j, T, BK)
        b_kj = tl.load(k + key * K + o_k, mask=m_key, other=0).to(tl.float32)
        b_gj = tl.load(gc + key * K + o_k, mask=m_key, other=0)
        b_dAj = tl.load(dA + rows * BT + i_i * BC + j, mask=m_r, other=0)  # (BC,)
        keep = m & (o_c[:, None] > j)
        decay = tl.exp(tl.where(keep, b_g - b_gj[None, :], float("-inf")))
        b_dq += b_dAj[:, None] * b_kj[None, :] * decay

    # dk: this sub-chunk's keys against queries of later sub-chunks, reference = last key row
    t_last = tl.minimum(t0 + BC, T) - 1
    b_gr = tl.load(gc + ((seq + t_last) * H + i_h) * K + o_k, mask=m_k, other=0)
    b_dk = tl.zeros([BC, BK], dtype=tl.float32)
    for i_j in range(i_i + 1, NC):
        q0 = i_t * BT + i_j * BC
        o_q = q0 + o_c
        m_q = o_q < T
        qrows = (seq + o_q) * H + i_h
        mq = m_q[:, None] & m_k[None, :]
        b_qj = tl.load(q + qrows[:, None] * K + o_k[None, :], mask=mq, other=0).to(tl.float32)
        b_gqj = tl.load(gc + qrows[:, None] * K + o_k[None, :], mask=mq, other=0)
        b_qr = tl.where(mq, b_qj * tl.exp(b_gqj - b_gr[None, :]), 0).to(dtype)
        # dAᵀ block: (this sub-chunk's keys, sub-chunk j's queries)
        b_dAt = tl.load(dA + qrows[None, :] * BT + i_i * BC + o_c[:, None], mask=m_q[None, :], other=0)
        b_dk += tl.dot(b_dAt.to(dtype), b_qr, input_precision=DOT_PRECISION)
    b_dk = tl.where(m, b_dk * tl.exp(b_gr[None, :] - b_g), 0)
    for j in range(BC):  # diagonal block, queries t = t0 + j > s
        qrow = (seq + t0 + j) * H + i_h
        m_qj = m_k & row_in_range(t0 + j, T, BK)
        b_qj = tl.load(q + qrow * K + o_k, mask=m_qj, other=0).to(tl.float32)
        b_gqj = tl.load(gc + qrow * K + o_k, mask=m_qj, other=0)
        b_dAj = tl.load(
            dA + qrow * BT + i_i * BC + o_c, mask=row_in_range(t0 + j, T, BC), other=0
        )  # (BC,) over keys
        keep = m & (o_c[:, None] < j) & row_in_range(t0 + j, T, BK)[None, :]
        decay = tl.exp(tl.where(keep, b_gqj[None, :] - b_g, float("-inf")))
        b_dk += b_dAj[:, None] * b_qj[None, :] * decay

    out = rows[:, None] * K + o_k[None, :]
    tl.store(dq + out, b_dq * scale, mask=m)
    tl.store(dk + out, b_dk * scale, mask=m)


@tuned("K", "V", "BT", "BK", "BV")
@triton.jit(do_not_specialize=["T", "NT"])
def qk_gate_grads_kernel(
    q,
    k,
    v,
    do,
    gc,
    h,
    dh,
    dA,
    dq_intra,
    dk_intra,
    dq,
    dk,
    dg,
    scale,
    T,
    NT,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_k, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    m = m_t[:, None] & m_k[None, :]
    seq = i_b.to(tl.int64) * T
    tok = (seq + o_t) * H + i_h
    last = (seq + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h
    base = ((i_b.to(tl.int64) * NT + i_t) * H + i_h) * K * V
    dtype = v.dtype.element_ty

    b_dq = tl.zeros([BT, BK], dtype=tl.float32)  # do @ hᵀ
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)  # v @ dhᵀ
    b_hdh = tl.zeros([BK], dtype=tl.float32)  # Σ_v h ⊙ dh
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        m_vk = m_v[:, None] & m_k[None, :]
        b_do = tl.load(do + tok[:, None] * V + o_v[None, :], mask=m_tv, other=0)
        b_v = tl.load(v + tok[:, None] * V + o_v[None, :], mask=m_tv, other=0)
        b_ht = tl.load(h + base + o_k[None, :] * V + o_v[:, None], mask=m_vk, other=0)  # (BV, BK)
        b_dht = tl.load(dh + base + o_k[None, :] * V + o_v[:, None], mask=m_vk, other=0)
        b_dq += tl.dot(b_do, b_ht.to(dtype), input_precision=DOT_PRECISION)
        b_dk += tl.dot(b_v, b_dht.to(dtype), input_precision=DOT_PRECISION)
        b_hdh += tl.sum(b_ht.to(tl.float32) * b_dht.to(tl.float32), axis=0)

    b_q = tl.load(q + tok[:, None] * K + o_k[None, :], mask=m, other=0).to(tl.float32)
    b_k = tl.load(k + tok[:, None] * K + o_k[None, :], mask=m, other=0).to(tl.float32)
    b_g = tl.load(gc + tok[:, None] * K + o_k[None, :], mask=m, other=0)
    b_glast = tl.load(gc + last * K + o_k, mask=m_k, other=0)
    b_dq = b_dq * scale * tl.exp(b_g)
    b_dk = tl.where(m, b_dk * tl.exp(b_glast[None, :] - b_g), 0)
    # Σ_v S_{n+1} ⊙ dS_{n+1} with S_{n+1} = exp(b_C) h_n + Σ_s (k_s ⊙ exp(b_C − b_s))ᵀ v_s
    b_across = tl.exp(b_glast) * b_hdh + tl.sum(b_k * b_dk, axis=0)  # (BK,)
    b_dq += tl.load(dq_intra + tok[:, None] * K + o_k[None, :], mask=m, other=0)
    b_dk += tl.load(dk_intra + tok[:, None] * K + o_k[None, :], mask=m, other=0)
    b_dg = tl.cumsum(b_q * b_dq - b_k * b_dk, axis=0, reverse=True) + b_across[None, :]
    # the undecayed pairs s = t
    b_dAd = tl.load(dA + tok * BT + (o_t - i_t * BT), mask=m_t, other=0)  # (BT,)
    b_dq += b_dAd[:, None] * b_k * scale
    b_dk += b_dAd[:, None] * b_q * scale
    out = tok[:, None] * K + o_k[None, :]
    tl.store(dq + out, b_dq.to(dq.dtype.element_ty), mask=m)
    tl.store(dk + out, b_dk.to(dk.dtype.element_ty), mask=m)
    tl.store(dg + out, b_dg.to(dg.dtype.element_ty), mask=m)


def state_grads(
    q: torch.Tensor,
    do: torch.Tensor,
    gc: torch.Tensor,
    dht: torch.Tensor | None,
    scale: float,
    BT: int,
    want_dh0: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    B, T, H, K = q.shape
    V = do.shape[-1]
    NT = triton.cdiv(T, BT)
    state_dtype = torch.float32 if q.dtype == torch.float32 else q.dtype
    dh = torch.empty(B, NT, H, K, V, device=q.device, dtype=state_dtype)
    dh0 = torch.empty(B, H, K, V, device=q.device, dtype=torch.float32) if want_dh0 else None
    BK, BV = state_blocks(B * H, K, V)
    grid = (triton.cdiv(K, BK), triton.cdiv(V, BV), B * H)
    state_grads_kernel[grid](
        q, do, gc, dht, dh, dh0, scale, T, NT, H, K, V, BT, BK, BV,
        USE_DHT=dht is not None, STORE_DH0=want_dh0, DOT_PRECISION=dot_precision(q.dtype),
    )  # fmt: skip
    return dh, dh0


def attention_grad(v: torch.Tensor, do: torch.Tensor, BT: int) -> torch.Tensor:
    B, T, H, V = v.shape
    dA = torch.empty(B, T, H, BT, device=v.device, dtype=torch.float32)
    attention_grad_kernel[(triton.cdiv(T, BT), B * H)](
        v, do, dA, T, H, V, BT, block_size(V), DOT_PRECISION=dot_precision(v.dtype)
    )
    return dA


def value_grad(
    k: torch.Tensor, do: torch.Tensor, gc: torch.Tensor, A: torch.Tensor, dh: torch.Tensor, BT: int
) -> torch.Tensor:
    B, T, H, K = k.shape
    V = do.shape[-1]
    dv = torch.empty_like(do)
    BK, BV = block_size(K), block_size(V)
    grid = (triton.cdiv(V, BV), triton.cdiv(T, BT), B * H)
    value_grad_kernel[grid](
        k, do, gc, A, dh, dv, T, triton.cdiv(T, BT), H, K, V, BT, BK, BV, DOT_PRECISION=dot_precision(k.dtype)
    )
    return dv


def qk_gate_grads(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    do: torch.Tensor,
    gc: torch.Tensor,
    h: torch.Tensor,
    dh: torch.Tensor,
    dA: torch.Tensor,
    scale: float,
    BT: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, T, H, K = q.shape
    V = v.shape[-1]
    BC, BK, BV = 16, block_size(K), block_size(V)
    NC = BT // BC
    precision = dot_precision(q.dtype)
    dq_intra = torch.empty(B, T, H, K, device=q.device, dtype=torch.float32)
    dk_intra = torch.empty_like(dq_intra)
    grid = (triton.cdiv(K, BK), triton.cdiv(T, BT) * NC, B * H)
    intra_qk_grads_kernel[grid](
        q, k, gc, dA, dq_intra, dk_intra, scale, T, H, K, BT, BC, BK, NC, DOT_PRECISION=precision
    )
    dq, dk, dg = torch.empty_like(q), torch.empty_like(k), torch.empty_like(g)
    grid = (triton.cdiv(K, BK), triton.cdiv(T, BT), B * H)
    qk_gate_grads_kernel[grid](
        q, k, v, do, gc, h, dh, dA, dq_intra, dk_intra, dq, dk, dg, scale, T, triton.cdiv(T, BT),
        H, K, V, BT, BK, BV, DOT_PRECISION=precision,
    )  # fmt: skip
    return dq, dk, dg
