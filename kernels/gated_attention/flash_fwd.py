"""Triton forward kernel of fused gated flash attention, and the mask / gate helpers it shares.

Flash attention (Dao, arXiv 2205.14135 / 2307.08691) with the sigmoid gate of gated attention
(arXiv 2505.06708) in the epilogue: an online softmax over key blocks, then o = (acc / l) · σ(gate)
is the only store, so gating costs no extra pass over the output. The base-2 log-sum-exp is kept
for the backward (:mod:`.flash_bwd`); a row that sees no key stores o = 0 and lse = +inf.

Key blocks split in two stages, as in Triton's fused-attention tutorial: blocks every query row of
the tile sees completely run without causal / edge masks (key padding still applies); the few
blocks on the causal diagonal or the ragged end run with the full mask.
Layout [B, T, H, D]: any batch/time/head strides, unit stride on D.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK: tl.constexpr):
    """Keys inside the sequence and kept by the padding mask: (BLOCK_N,) bool."""
    keep = offs_n < Tk
    if HAS_MASK:
        pad = tl.load(MASK + b * stride_mb + offs_n, mask=keep, other=0)
        keep = keep & (pad != 0)
    return keep


@triton.jit
def pair_keep(offs_m, offs_n, keys, row_ok, Tq, Tk, CAUSAL: tl.constexpr):
    """(query, key) pairs attended to: (BLOCK_M, BLOCK_N) bool; causal is bottom-right aligned."""
    keep = keys[None, :] & row_ok[:, None]
    if CAUSAL:
        keep = keep & (offs_n[None, :] <= offs_m[:, None] + (Tk - Tq))
    return keep


@triton.jit
def load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE: tl.constexpr):
    """The pre-sigmoid gate of a query tile in fp32: (BLOCK_M, 1) headwise, (BLOCK_M, BLOCK_DV) else."""
    base = G + b * stride_gb + h * stride_gh
    if HEADWISE:
        g = tl.load(base + offs_m * stride_gt, mask=row_ok, other=0.0).to(tl.float32)[:, None]
    else:
        ptrs = base + offs_m[:, None] * stride_gt + offs_dv[None, :]
        g = tl.load(ptrs, mask=row_ok[:, None] & (offs_dv < DV)[None, :], other=0.0).to(tl.float32)
    return g


@triton.jit
def key_ranges(m0, Tq, Tk, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """For the query tile starting at m0: keys [0, full) are seen by every row of the tile (no mask
    needed), keys [full, hi) need the mask, keys from hi on are seen by none (bottom-right causal)."""
    if CAUSAL:
        full = tl.maximum(m0 + Tk - Tq + 1, 0) // BLOCK_N * BLOCK_N
        hi = tl.minimum(Tk, m0 + BLOCK_M + Tk - Tq)
    else:
        full = Tk // BLOCK_N * BLOCK_N
        hi = Tk
    return full, hi


@triton.jit
def _fwd_inner(
    acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, MASK, stride_mb, b,
    offs_m, offs_dk, offs_dv, row_ok, lo, hi, Tq, Tk, DK, DV, qk_scale,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, MASKED: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        col_ok = offs_n < Tk
        k_ptrs = k_base + offs_n[:, None] * stride_kt + offs_dk[None, :]
        k = tl.load(k_ptrs, mask=col_ok[:, None] & (offs_dk < DK)[None, :], other=0.0)  # (BLOCK_N, BLOCK_DK)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), log2 units
        if MASKED:
            keys = key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK)
            s = tl.where(pair_keep(offs_m, offs_n, keys, row_ok, Tq, Tk, CAUSAL), s, float("-inf"))
        elif HAS_MASK:
            s = tl.where(key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK)[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v_ptrs = v_base + offs_n[:, None] * stride_vt + offs_dv[None, :]
        v = tl.load(v_ptrs, mask=col_ok[:, None] & (offs_dv < DV)[None, :], other=0.0)  # (BLOCK_N, BLOCK_DV)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def fwd_kernel(
    Q, K, V, G, MASK, OUT, LSE,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_kt, stride_kh,
    stride_vb, stride_vt, stride_vh,
    stride_gb, stride_gt, stride_gh,
    stride_mb,
    stride_ob, stride_ot, stride_oh,
    H, GROUP, Tq, Tk, qk_scale, Q_BUCKET, K_BUCKET,
    DK: tl.constexpr, DV: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    # Last query tiles first: under the causal mask they have the most keys, so starting them early
    # shortens the tail of the launch.
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    hk = h // GROUP
    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < Tq
    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_dk[None, :]
    q = tl.load(q_ptrs, mask=row_ok[:, None] & (offs_dk < DK)[None, :], other=0.0)  # (BLOCK_M, BLOCK_DK)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    # A finite floor for the running max: a row whose keys are all masked keeps m = -1e30, its
    # probabilities are exp2(-inf) = 0 and no inf - inf (NaN) ever appears.
    m_i = tl.full([BLOCK_M], -1.0e30, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    full, hi = key_ranges(m0, Tq, Tk, CAUSAL, BLOCK_M, BLOCK_N)
    acc, l_i, m_i = _fwd_inner(
        acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, MASK, stride_mb, b,
        offs_m, offs_dk, offs_dv, row_ok, 0, full, Tq, Tk, DK, DV, qk_scale,
        CAUSAL, HAS_MASK, False, PRECISION, BLOCK_N,
    )  # fmt: skip
    acc, l_i, m_i = _fwd_inner(
        acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, MASK, stride_mb, b,
        offs_m, offs_dk, offs_dv, row_ok, full, hi, Tq, Tk, DK, DV, qk_scale,
        CAUSAL, HAS_MASK, True, PRECISION, BLOCK_N,
    )  # fmt: skip
    seen = l_i > 0
    o = acc / tl.where(seen, l_i, 1.0)[:, None]
    o = o * tl.sigmoid(
        load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE)
    )
    o_ptrs = OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_dv[None, :]
    tl.store(o_ptrs, o.to(OUT.dtype.element_ty), mask=row_ok[:, None] & (offs_dv < DV)[None, :])
    lse = tl.where(seen, m_i + tl.log2(tl.where(seen, l_i, 1.0)), float("inf"))
    tl.store(LSE + pid_bh * Tq + offs_m, lse, mask=row_ok)
