"""Triton kernels of fused gated flash attention: forward, backward preprocess, dK/dV, dQ.

Flash attention (Dao, arXiv 2205.14135 / 2307.08691) with the sigmoid gate of gated attention
(arXiv 2505.06708) folded into the epilogue of the forward and into the backward:

- forward: online softmax over key blocks, then o = (acc / l) · σ(gate) is the only store; the
  log-sum-exp (base 2) is kept for the backward. A row that sees no key stores 0 and lse = +inf.
- preprocess: with a = attention output and o = a · σ(g), rowsum(dA ⊙ a) = rowsum(do ⊙ o) and
  dg = do ⊙ o ⊙ (1 − σ(g)), so Δ and dgate come from the gated output alone (no ungated copy).
- dK/dV: one program per key block and KV head loops over every query block of every query head
  in its group (grouped-query attention without atomics); dQ: one program per query block.
  Both feed dA = do · σ(gate) into the standard flash backward.

Masks (bottom-right causal, key padding, ragged edges) are applied as ``where`` on the scores.
Layout [B, T, H, D] with arbitrary batch/time/head strides and unit stride on D.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _keep(offs_m, offs_n, key_keep, row_ok, Tq, Tk, CAUSAL: tl.constexpr):
    keep = key_keep[None, :] & row_ok[:, None]  # (BLOCK_M, BLOCK_N)
    if CAUSAL:
        keep = keep & (offs_n[None, :] <= offs_m[:, None] + (Tk - Tq))
    return keep


@triton.jit
def _key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK: tl.constexpr):
    keep = offs_n < Tk
    if HAS_MASK:
        pad = tl.load(MASK + b * stride_mb + offs_n, mask=keep, other=0)
        keep = keep & (pad != 0)
    return keep


@triton.jit
def _load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE: tl.constexpr):
    base = G + b * stride_gb + h * stride_gh
    if HEADWISE:
        g = tl.load(base + offs_m * stride_gt, mask=row_ok, other=0.0).to(tl.float32)[:, None]
    else:
        ptrs = base + offs_m[:, None] * stride_gt + offs_dv[None, :]
        g = tl.load(ptrs, mask=row_ok[:, None] & (offs_dv < DV)[None, :], other=0.0).to(tl.float32)
    return g  # (BLOCK_M, 1) or (BLOCK_M, BLOCK_DV)


@triton.jit
def fwd_kernel(
    Q, K, V, G, MASK, OUT, LSE,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_kt, stride_kh,
    stride_vb, stride_vt, stride_vh,
    stride_gb, stride_gt, stride_gh,
    stride_mb,
    stride_ob, stride_ot, stride_oh,
    H, GROUP, Tq, Tk, DK, DV, qk_scale, Q_BUCKET, K_BUCKET,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    hk = h // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < Tq
    dk_ok = offs_dk < DK
    dv_ok = offs_dv < DV
    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_dk[None, :]
    q = tl.load(q_ptrs, mask=row_ok[:, None] & dk_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_DK)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    # A finite floor for the running max: a row whose keys are all masked keeps m = -1e30, its
    # probabilities are exp2(-inf) = 0 and no inf - inf (NaN) ever appears.
    m_i = tl.full([BLOCK_M], -1.0e30, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    hi = Tk
    if CAUSAL:
        hi = tl.minimum(Tk, (pid_m + 1) * BLOCK_M + Tk - Tq)
    for start_n in range(0, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        col_ok = offs_n < Tk
        k = tl.load(
            k_base + offs_n[:, None] * stride_kt + offs_dk[None, :],
            mask=col_ok[:, None] & dk_ok[None, :],
            other=0.0,
        )  # (BLOCK_N, BLOCK_DK)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), log2 units
        keep = _keep(
            offs_m, offs_n, _key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK), row_ok, Tq, Tk, CAUSAL
        )
        s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(
            v_base + offs_n[:, None] * stride_vt + offs_dv[None, :],
            mask=col_ok[:, None] & dv_ok[None, :],
            other=0.0,
        )  # (BLOCK_N, BLOCK_DV)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    seen = l_i > 0
    o = acc / tl.where(seen, l_i, 1.0)[:, None]
    o = o * tl.sigmoid(
        _load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE)
    )
    o_ptrs = OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_dv[None, :]
    tl.store(o_ptrs, o.to(OUT.dtype.element_ty), mask=row_ok[:, None] & dv_ok[None, :])
    lse = tl.where(seen, m_i + tl.log2(tl.where(seen, l_i, 1.0)), float("inf"))
    tl.store(LSE + pid_bh * Tq + offs_m, lse, mask=row_ok)


@triton.jit
def bwd_preprocess_kernel(
    OUT, DO, G, DELTA, DG,
    stride_ob, stride_ot, stride_oh,
    stride_dob, stride_dot, stride_doh,
    stride_gb, stride_gt, stride_gh,
    stride_dgb, stride_dgt, stride_dgh,
    H, Tq, DV,
    HEADWISE: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < Tq
    ok = row_ok[:, None] & (offs_dv < DV)[None, :]
    o = tl.load(
        OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_dv[None, :],
        mask=ok,
        other=0.0,
    )
    do_ptrs = DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dot + offs_dv[None, :]
    do = tl.load(do_ptrs, mask=ok, other=0.0)
    od = o.to(tl.float32) * do.to(tl.float32)  # (BLOCK_M, BLOCK_DV)
    tl.store(DELTA + pid_bh * Tq + offs_m, tl.sum(od, 1), mask=row_ok)
    g = _load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE)
    dg = od * (1.0 - tl.sigmoid(g))
    dg_base = DG + b * stride_dgb + h * stride_dgh
    if HEADWISE:
        tl.store(dg_base + offs_m * stride_dgt, tl.sum(dg, 1).to(DG.dtype.element_ty), mask=row_ok)
    else:
        tl.store(
            dg_base + offs_m[:, None] * stride_dgt + offs_dv[None, :], dg.to(DG.dtype.element_ty), mask=ok
        )


@triton.jit
def _load_row_grads(
    DO, G, LSE, DELTA, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
    b, h, bh, offs_m, offs_dv, row_ok, Tq, DV, HEADWISE: tl.constexpr,
):  # fmt: skip
    ok = row_ok[:, None] & (offs_dv < DV)[None, :]
    do_ptrs = DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dot + offs_dv[None, :]
    do = tl.load(do_ptrs, mask=ok, other=0.0).to(tl.float32)
    g = _load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE)
    da = do * tl.sigmoid(g)  # gradient w.r.t. the ungated attention output, fp32
    lse = tl.load(LSE + bh * Tq + offs_m, mask=row_ok, other=float("inf"))
    delta = tl.load(DELTA + bh * Tq + offs_m, mask=row_ok, other=0.0)
    return da, lse, delta


@triton.jit
def bwd_dkdv_kernel(
    Q, K, V, G, MASK, DO, LSE, DELTA, DK_, DV_,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_kt, stride_kh,
    stride_vb, stride_vt, stride_vh,
    stride_gb, stride_gt, stride_gh,
    stride_mb,
    stride_dob, stride_dot, stride_doh,
    stride_dkb, stride_dkt, stride_dkh,
    stride_dvb, stride_dvt, stride_dvh,
    H, H_KV, GROUP, Tq, Tk, DK, DV, qk_scale, sm_scale, Q_BUCKET, K_BUCKET,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bhk = tl.program_id(1)
    b = pid_bhk // H_KV
    hk = pid_bhk % H_KV
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    col_ok = offs_n < Tk
    dk_ok = offs_dk < DK
    dv_ok = offs_dv < DV
    k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kt + offs_dk[None, :]
    k = tl.load(k_ptrs, mask=col_ok[:, None] & dk_ok[None, :], other=0.0)  # (BLOCK_N, BLOCK_DK)
    v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vt + offs_dv[None, :]
    v = tl.load(v_ptrs, mask=col_ok[:, None] & dv_ok[None, :], other=0.0)  # (BLOCK_N, BLOCK_DV)
    key_keep = _key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK)
    dk = tl.zeros([BLOCK_N, BLOCK_DK], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], tl.float32)
    lo = 0
    if CAUSAL:
        # Queries before (first key of the block) - (Tk - Tq) cannot see any key of this block.
        lo = tl.maximum(pid_n * BLOCK_N - (Tk - Tq), 0) // BLOCK_M * BLOCK_M
    for j in range(GROUP):
        h = hk * GROUP + j
        bh = b * H + h
        for start_m in range(lo, Tq, BLOCK_M):
            offs_m = start_m + tl.arange(0, BLOCK_M)
            row_ok = offs_m < Tq
            q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_dk[None, :]
            q = tl.load(q_ptrs, mask=row_ok[:, None] & dk_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_DK)
            da, lse, delta = _load_row_grads(
                DO, G, LSE, DELTA, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
                b, h, bh, offs_m, offs_dv, row_ok, Tq, DV, HEADWISE,
            )  # fmt: skip
            da = da.to(q.dtype)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
            s = tl.where(_keep(offs_m, offs_n, key_keep, row_ok, Tq, Tk, CAUSAL), s, float("-inf"))
            p = tl.exp2(s - lse[:, None])  # (BLOCK_M, BLOCK_N)
            dv = tl.dot(tl.trans(p.to(da.dtype)), da, dv, input_precision=PRECISION)
            dp = tl.dot(da, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
            ds = p * (dp - delta[:, None])
            dk = tl.dot(tl.trans(ds.to(q.dtype)), q, dk, input_precision=PRECISION)
    dk = dk * sm_scale
    dk_ptrs = DK_ + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dkt + offs_dk[None, :]
    tl.store(dk_ptrs, dk.to(DK_.dtype.element_ty), mask=col_ok[:, None] & dk_ok[None, :])
    dv_ptrs = DV_ + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvt + offs_dv[None, :]
    tl.store(dv_ptrs, dv.to(DV_.dtype.element_ty), mask=col_ok[:, None] & dv_ok[None, :])


@triton.jit
def bwd_dq_kernel(
    Q, K, V, G, MASK, DO, LSE, DELTA, DQ,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_kt, stride_kh,
    stride_vb, stride_vt, stride_vh,
    stride_gb, stride_gt, stride_gh,
    stride_mb,
    stride_dob, stride_dot, stride_doh,
    stride_dqb, stride_dqt, stride_dqh,
    H, GROUP, Tq, Tk, DK, DV, qk_scale, sm_scale, Q_BUCKET, K_BUCKET,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    hk = h // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_m < Tq
    dk_ok = offs_dk < DK
    dv_ok = offs_dv < DV
    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_dk[None, :]
    q = tl.load(q_ptrs, mask=row_ok[:, None] & dk_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_DK)
    da, lse, delta = _load_row_grads(
        DO, G, LSE, DELTA, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
        b, h, pid_bh, offs_m, offs_dv, row_ok, Tq, DV, HEADWISE,
    )  # fmt: skip
    da = da.to(q.dtype)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_DK], tl.float32)
    hi = Tk
    if CAUSAL:
        hi = tl.minimum(Tk, (pid_m + 1) * BLOCK_M + Tk - Tq)
    for start_n in range(0, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        col_ok = offs_n < Tk
        k = tl.load(
            k_base + offs_n[:, None] * stride_kt + offs_dk[None, :],
            mask=col_ok[:, None] & dk_ok[None, :],
            other=0.0,
        )  # (BLOCK_N, BLOCK_DK)
        v = tl.load(
            v_base + offs_n[:, None] * stride_vt + offs_dv[None, :],
            mask=col_ok[:, None] & dv_ok[None, :],
            other=0.0,
        )  # (BLOCK_N, BLOCK_DV)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        keep = _keep(
            offs_m, offs_n, _key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK), row_ok, Tq, Tk, CAUSAL
        )
        p = tl.exp2(tl.where(keep, s, float("-inf")) - lse[:, None])
        dp = tl.dot(da, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    dq = dq * sm_scale
    dq_ptrs = DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqt + offs_dk[None, :]
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=row_ok[:, None] & dk_ok[None, :])


def autotuned(kernel: triton.JITFunction, configs: list[triton.Config]) -> triton.runtime.Autotuner:
    """``kernel`` autotuned over ``configs``, keyed on sizes bucketed to powers of two."""
    key = ["Q_BUCKET", "K_BUCKET", "BLOCK_DK", "BLOCK_DV", "CAUSAL", "HAS_MASK", "HEADWISE", "PRECISION"]
    return triton.autotune(configs=configs, key=key)(kernel)
