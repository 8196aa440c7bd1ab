"""Triton backward kernels of fused gated flash attention: preprocess, dK/dV, dQ.

With a = attention output and o = a · σ(g) the stored gated output:
- preprocess: rowsum(dA ⊙ a) = rowsum(do ⊙ o) =: Δ and dg = do ⊙ o ⊙ (1 − σ(g)), so Δ and
  dgate come from the gated output alone; no ungated copy of the output is ever written;
- dK/dV: one program per key block and KV head walks every query block of every query head in
  its group (grouped-query attention without atomics), dQ: one program per query block; both
  feed dA = do · σ(g) into the flash-attention backward (Dao, arXiv 2307.08691, Algorithm 2).
Scores are recomputed from the forward's base-2 log-sum-exp. As in the forward, tiles that no
causal / edge mask touches skip the mask arithmetic (key padding always applies).
"""

from __future__ import annotations

import triton
import triton.language as tl

from reasonkit.kernels.gated_attention.flash_fwd import key_keep, key_ranges, load_gate, pair_keep


@triton.jit
def bwd_preprocess_kernel(
    OUT, DO, G, DELTA, DG,
    stride_ob, stride_ot, stride_oh,
    stride_dob, stride_dot, stride_doh,
    stride_gb, stride_gt, stride_gh,
    stride_dgb, stride_dgt, stride_dgh,
    H, Tq, DV: tl.constexpr,
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
    o_ptrs = OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_dv[None, :]
    do_ptrs = DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dot + offs_dv[None, :]
    od = tl.load(o_ptrs, mask=ok, other=0.0).to(tl.float32) * tl.load(do_ptrs, mask=ok, other=0.0).to(
        tl.float32
    )
    tl.store(DELTA + pid_bh * Tq + offs_m, tl.sum(od, 1), mask=row_ok)
    g = load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE)
    dg = od * (1.0 - tl.sigmoid(g))  # (BLOCK_M, BLOCK_DV)
    dg_base = DG + b * stride_dgb + h * stride_dgh
    if HEADWISE:
        tl.store(dg_base + offs_m * stride_dgt, tl.sum(dg, 1).to(DG.dtype.element_ty), mask=row_ok)
    else:
        tl.store(
            dg_base + offs_m[:, None] * stride_dgt + offs_dv[None, :], dg.to(DG.dtype.element_ty), mask=ok
        )


@triton.jit
def _row_grads(
    DO, G, LSE, DELTA, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
    b, h, bh, offs_m, offs_dv, row_ok, Tq, DV, HEADWISE: tl.constexpr,
):  # fmt: skip
    """dA = do · σ(g) in fp32 (BLOCK_M, BLOCK_DV), and the rows' lse and Δ (+inf / 0 off the end)."""
    ok = row_ok[:, None] & (offs_dv < DV)[None, :]
    do_ptrs = DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dot + offs_dv[None, :]
    do = tl.load(do_ptrs, mask=ok, other=0.0).to(tl.float32)
    da = do * tl.sigmoid(
        load_gate(G, stride_gb, stride_gt, stride_gh, b, h, offs_m, offs_dv, row_ok, DV, HEADWISE)
    )
    lse = tl.load(LSE + bh * Tq + offs_m, mask=row_ok, other=float("inf"))
    delta = tl.load(DELTA + bh * Tq + offs_m, mask=row_ok, other=0.0)
    return da, lse, delta


@triton.jit
def _dkdv_inner(
    dk, dv, k, v, keys, Q, DO, G, LSE, DELTA,
    stride_qb, stride_qt, stride_qh, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
    b, h, bh, offs_n, offs_dk, offs_dv, lo, hi, Tq, Tk, DK, DV, qk_scale,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, MASKED: tl.constexpr,
    PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        row_ok = offs_m < Tq
        q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_dk[None, :]
        q = tl.load(q_ptrs, mask=row_ok[:, None] & (offs_dk < DK)[None, :], other=0.0)  # (BLOCK_M, BLOCK_DK)
        da, lse, delta = _row_grads(
            DO, G, LSE, DELTA, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
            b, h, bh, offs_m, offs_dv, row_ok, Tq, DV, HEADWISE,
        )  # fmt: skip
        da = da.to(q.dtype)
        # Transposed scores (keys x queries): p^T and ds^T are then already the A operands of the
        # dv and dk products, so no register tile needs a transpose.
        st = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # (BLOCK_N, BLOCK_M)
        if MASKED:
            keep = keys[:, None] & row_ok[None, :]
            if CAUSAL:
                keep = keep & (offs_n[:, None] <= offs_m[None, :] + (Tk - Tq))
            st = tl.where(keep, st, float("-inf"))
        elif HAS_MASK:
            st = tl.where(keys[:, None], st, float("-inf"))
        # Rows past Tq have lse = +inf, so p = 0; columns past Tk only touch unstored dk/dv rows.
        pt = tl.exp2(st - lse[None, :])  # (BLOCK_N, BLOCK_M)
        dv = tl.dot(pt.to(da.dtype), da, dv, input_precision=PRECISION)
        dpt = tl.dot(v, tl.trans(da), input_precision=PRECISION)  # (BLOCK_N, BLOCK_M)
        dst = pt * (dpt - delta[None, :])
        dk = tl.dot(dst.to(q.dtype), q, dk, input_precision=PRECISION)
    return dk, dv


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
    H, H_KV, GROUP, Tq, Tk, qk_scale, sm_scale, Q_BUCKET, K_BUCKET,
    DK: tl.constexpr, DV: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bhk = tl.program_id(1)
    b = pid_bhk // H_KV
    hk = pid_bhk % H_KV
    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    offs_dk = tl.arange(0, BLOCK_DK)
    offs_dv = tl.arange(0, BLOCK_DV)
    col_ok = offs_n < Tk
    k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kt + offs_dk[None, :]
    k = tl.load(k_ptrs, mask=col_ok[:, None] & (offs_dk < DK)[None, :], other=0.0)  # (BLOCK_N, BLOCK_DK)
    v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vt + offs_dv[None, :]
    v = tl.load(v_ptrs, mask=col_ok[:, None] & (offs_dv < DV)[None, :], other=0.0)  # (BLOCK_N, BLOCK_DV)
    keys = key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK)
    dk = tl.zeros([BLOCK_N, BLOCK_DK], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], tl.float32)
    if CAUSAL:
        # Query i sees key j iff i >= j - (Tk - Tq): rows before `lo` see none of this block's keys,
        # rows from `full` on see all of them.
        lo = tl.maximum(n0 - (Tk - Tq), 0) // BLOCK_M * BLOCK_M
        full = (tl.maximum(n0 + BLOCK_N - 1 - (Tk - Tq), 0) + BLOCK_M - 1) // BLOCK_M * BLOCK_M
        masked_hi = tl.minimum(full, Tq)
    else:
        lo = 0
        full = 0
        masked_hi = 0
    for j in range(GROUP):
        h = hk * GROUP + j
        bh = b * H + h
        dk, dv = _dkdv_inner(
            dk, dv, k, v, keys, Q, DO, G, LSE, DELTA,
            stride_qb, stride_qt, stride_qh, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
            b, h, bh, offs_n, offs_dk, offs_dv, lo, masked_hi, Tq, Tk, DK, DV, qk_scale,
            CAUSAL, HAS_MASK, HEADWISE, True, PRECISION, BLOCK_M,
        )  # fmt: skip
        dk, dv = _dkdv_inner(
            dk, dv, k, v, keys, Q, DO, G, LSE, DELTA,
            stride_qb, stride_qt, stride_qh, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
            b, h, bh, offs_n, offs_dk, offs_dv, full, Tq, Tq, Tk, DK, DV, qk_scale,
            CAUSAL, HAS_MASK, HEADWISE, False, PRECISION, BLOCK_M,
        )  # fmt: skip
    dk = dk * sm_scale
    dk_ptrs = DK_ + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dkt + offs_dk[None, :]
    tl.store(dk_ptrs, dk.to(DK_.dtype.element_ty), mask=col_ok[:, None] & (offs_dk < DK)[None, :])
    dv_ptrs = DV_ + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvt + offs_dv[None, :]
    tl.store(dv_ptrs, dv.to(DV_.dtype.element_ty), mask=col_ok[:, None] & (offs_dv < DV)[None, :])


@triton.jit
def _dq_inner(
    dq, q, da, lse, delta, k_base, v_base, stride_kt, stride_vt, MASK, stride_mb, b,
    offs_m, offs_dk, offs_dv, row_ok, lo, hi, Tq, Tk, DK, DV, qk_scale,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, MASKED: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        col_ok = offs_n < Tk
        k_ptrs = k_base + offs_n[:, None] * stride_kt + offs_dk[None, :]
        k = tl.load(k_ptrs, mask=col_ok[:, None] & (offs_dk < DK)[None, :], other=0.0)  # (BLOCK_N, BLOCK_DK)
        v_ptrs = v_base + offs_n[:, None] * stride_vt + offs_dv[None, :]
        v = tl.load(v_ptrs, mask=col_ok[:, None] & (offs_dv < DV)[None, :], other=0.0)  # (BLOCK_N, BLOCK_DV)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        if MASKED:
            keys = key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK)
            s = tl.where(pair_keep(offs_m, offs_n, keys, row_ok, Tq, Tk, CAUSAL), s, float("-inf"))
        elif HAS_MASK:
            s = tl.where(key_keep(MASK, stride_mb, b, offs_n, Tk, HAS_MASK)[None, :], s, float("-inf"))
        p = tl.exp2(s - lse[:, None])
        dp = tl.dot(da, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    return dq


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
    H, GROUP, Tq, Tk, qk_scale, sm_scale, Q_BUCKET, K_BUCKET,
    DK: tl.constexpr, DV: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, HEADWISE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)  # longest tiles first, as in the forward
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
    da, lse, delta = _row_grads(
        DO, G, LSE, DELTA, stride_dob, stride_dot, stride_doh, stride_gb, stride_gt, stride_gh,
        b, h, pid_bh, offs_m, offs_dv, row_ok, Tq, DV, HEADWISE,
    )  # fmt: skip
    da = da.to(q.dtype)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_DK], tl.float32)
    full, hi = key_ranges(m0, Tq, Tk, CAUSAL, BLOCK_M, BLOCK_N)
    dq = _dq_inner(
        dq, q, da, lse, delta, k_base, v_base, stride_kt, stride_vt, MASK, stride_mb, b,
        offs_m, offs_dk, offs_dv, row_ok, 0, full, Tq, Tk, DK, DV, qk_scale,
        CAUSAL, HAS_MASK, False, PRECISION, BLOCK_N,
    )  # fmt: skip
    dq = _dq_inner(
        dq, q, da, lse, delta, k_base, v_base, stride_kt, stride_vt, MASK, stride_mb, b,
        offs_m, offs_dk, offs_dv, row_ok, full, hi, Tq, Tk, DK, DV, qk_scale,
        CAUSAL, HAS_MASK, True, PRECISION, BLOCK_N,
    )  # fmt: skip
    dq = dq * sm_scale
    dq_ptrs = DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqt + offs_dk[None, :]
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=row_ok[:, None] & (offs_dk < DK)[None, :])
