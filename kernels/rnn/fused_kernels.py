"""Triton kernels of the head-wise LSTM / sLSTM: the whole time loop inside one program.

FlashRNN-style (Pöppel et al. 2024): one program per (head, block of 16 batch rows) loads the
head's four recurrent matrices r[g, n] once, keeps them on chip (registers / shared memory as
the compiler lays out the dot operands) when they fit (``RESIDENT``), and steps through time: pre = wx_t + h_{t-1} @ r + b, gate math in fp32, store h_t.
The forward also stores what the backward needs (pre-activations, c_t, and for sLSTM n_t, m_t);
the backward walks time in reverse with r^T on chip and writes d(pre) = dwx for every step. The
weight and bias gradients are then one large GEMM / reduction over (B, T) outside the kernel.

Equations: :mod:`reasonkit.kernels.rnn.naive`. The sLSTM stabiliser m is a constant for the
backward (it cancels in c / n), so no dm is propagated and the initial m gets a zero gradient.
Padded lanes (D not a power of two, B not a multiple of 16) load zeros and stay zero. When the
four tiles do not fit on chip (fp32 with D > 64) they are reloaded from L2 every step instead.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _logsigmoid(x):
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _weight(r_base, g, stride_rg, stride_ri, offs_d, ok, TRANSPOSED: tl.constexpr):
    """r[g, head] as a (BLOCK_D, BLOCK_D) tile, or its transpose; zero outside D."""
    if TRANSPOSED:
        ptrs = r_base + g * stride_rg + offs_d[None, :] * stride_ri + offs_d[:, None]
    else:
        ptrs = r_base + g * stride_rg + offs_d[:, None] * stride_ri + offs_d[None, :]
    return tl.load(ptrs, mask=ok, other=0.0)


@triton.jit
def _resident(r_base, g, stride_rg, stride_ri, offs_d, ok, TRANSPOSED: tl.constexpr, RESIDENT: tl.constexpr):
    """The tile to keep on chip for the whole loop, or a placeholder when it is reloaded per step."""
    if RESIDENT:
        w = _weight(r_base, g, stride_rg, stride_ri, offs_d, ok, TRANSPOSED)
    else:
        w = 0.0
    return w


@triton.jit
def _rdot(x, w, acc, r_base, g, stride_rg, stride_ri, offs_d, ok,
          TRANSPOSED: tl.constexpr, RESIDENT: tl.constexpr, PRECISION: tl.constexpr):  # fmt: skip
    """acc + x @ r[g] (or x @ r[g]^T) with the resident tile, or one reloaded from L2."""
    if not RESIDENT:
        w = _weight(r_base, g, stride_rg, stride_ri, offs_d, ok, TRANSPOSED)
    return tl.dot(x, w, acc, input_precision=PRECISION)


@triton.jit
def rnn_fwd_kernel(
    WX, R, BIAS, S0, MASK, H_OUT, S_OUT, GATES, C_ALL, N_ALL, M_ALL,
    stride_wb, stride_wt, stride_wg, stride_wn,
    stride_rg, stride_rn, stride_ri,
    stride_bg, stride_bn,
    stride_ss, stride_sb, stride_sn,
    stride_mb, stride_mt,
    stride_hb, stride_ht, stride_hn,
    stride_gb, stride_gt, stride_gg, stride_gn,
    B, T, D,
    SLSTM: tl.constexpr, HAS_MASK: tl.constexpr, STORE: tl.constexpr, PRECISION: tl.constexpr,
    RESIDENT: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    head = tl.program_id(0)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_d = tl.arange(0, BLOCK_D)
    b_ok = offs_b < B
    d_ok = offs_d < D
    bd_ok = b_ok[:, None] & d_ok[None, :]
    # Recurrent weights of this head, loaded once for all T steps: (BLOCK_D in, BLOCK_D out) each.
    r_base = R + head * stride_rn
    r_ok = d_ok[:, None] & d_ok[None, :]
    r_i = _resident(r_base, 0, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT)
    r_f = _resident(r_base, 1, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT)
    r_z = _resident(r_base, 2, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT)
    r_o = _resident(r_base, 3, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT)
    b_ptrs = BIAS + head * stride_bn + offs_d
    b_i = tl.load(b_ptrs, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    b_f = tl.load(b_ptrs + stride_bg, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    b_z = tl.load(b_ptrs + 2 * stride_bg, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    b_o = tl.load(b_ptrs + 3 * stride_bg, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    s_off = offs_b[:, None] * stride_sb + head * stride_sn + offs_d[None, :]
    h = tl.load(S0 + s_off, mask=bd_ok, other=0.0)  # (BLOCK_B, BLOCK_D) fp32 states
    c = tl.load(S0 + stride_ss + s_off, mask=bd_ok, other=0.0)
    nrm = c
    m = c
    if SLSTM:
        nrm = tl.load(S0 + 2 * stride_ss + s_off, mask=bd_ok, other=0.0)
        m = tl.load(S0 + 3 * stride_ss + s_off, mask=bd_ok, other=0.0)
    for t in range(T):
        w_ptrs = WX + offs_b[:, None] * stride_wb + t * stride_wt + head * stride_wn + offs_d[None, :]
        hd = h.to(R.dtype.element_ty)  # the recurrent matmul runs in the weights' dtype, fp32 accumulate
        p_i = tl.load(w_ptrs, mask=bd_ok, other=0.0).to(tl.float32) + b_i
        p_i = _rdot(hd, r_i, p_i, r_base, 0, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT, PRECISION)
        p_f = tl.load(w_ptrs + stride_wg, mask=bd_ok, other=0.0).to(tl.float32) + b_f
        p_f = _rdot(hd, r_f, p_f, r_base, 1, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT, PRECISION)
        p_z = tl.load(w_ptrs + 2 * stride_wg, mask=bd_ok, other=0.0).to(tl.float32) + b_z
        p_z = _rdot(hd, r_z, p_z, r_base, 2, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT, PRECISION)
        p_o = tl.load(w_ptrs + 3 * stride_wg, mask=bd_ok, other=0.0).to(tl.float32) + b_o
        p_o = _rdot(hd, r_o, p_o, r_base, 3, stride_rg, stride_ri, offs_d, r_ok, False, RESIDENT, PRECISION)
        if SLSTM:
            empty = nrm == 0.0
            log_f = _logsigmoid(p_f)
            m_new = tl.where(empty, p_i, tl.maximum(log_f + m, p_i))
            i_g = tl.exp(p_i - m_new)
            f_g = tl.where(empty, 0.0, tl.exp(log_f + m - m_new))
            c_new = f_g * c + i_g * _tanh(p_z)
            n_new = f_g * nrm + i_g
            h_new = tl.sigmoid(p_o) * c_new / n_new
        else:
            c_new = tl.sigmoid(p_f) * c + tl.sigmoid(p_i) * _tanh(p_z)
            h_new = tl.sigmoid(p_o) * _tanh(c_new)
            n_new = nrm
            m_new = m
        if HAS_MASK:
            keep = (tl.load(MASK + offs_b * stride_mb + t * stride_mt, mask=b_ok, other=0) != 0)[:, None]
            h_new = tl.where(keep, h_new, h)
            c_new = tl.where(keep, c_new, c)
            n_new = tl.where(keep, n_new, nrm)
            m_new = tl.where(keep, m_new, m)
        h, c, nrm, m = h_new, c_new, n_new, m_new
        out_off = offs_b[:, None] * stride_hb + t * stride_ht + head * stride_hn + offs_d[None, :]
        tl.store(H_OUT + out_off, h.to(H_OUT.dtype.element_ty), mask=bd_ok)
        if STORE:
            g_ptrs = GATES + offs_b[:, None] * stride_gb + t * stride_gt + head * stride_gn + offs_d[None, :]
            tl.store(g_ptrs, p_i, mask=bd_ok)
            tl.store(g_ptrs + stride_gg, p_f, mask=bd_ok)
            tl.store(g_ptrs + 2 * stride_gg, p_z, mask=bd_ok)
            tl.store(g_ptrs + 3 * stride_gg, p_o, mask=bd_ok)
            tl.store(C_ALL + out_off, c, mask=bd_ok)
            if SLSTM:
                tl.store(N_ALL + out_off, nrm, mask=bd_ok)
                tl.store(M_ALL + out_off, m, mask=bd_ok)
    tl.store(S_OUT + s_off, h, mask=bd_ok)
    tl.store(S_OUT + stride_ss + s_off, c, mask=bd_ok)
    if SLSTM:
        tl.store(S_OUT + 2 * stride_ss + s_off, nrm, mask=bd_ok)
        tl.store(S_OUT + 3 * stride_ss + s_off, m, mask=bd_ok)


@triton.jit
def _state_before(ALL, S0, s_index, stride_ss, s_off, out_off, stride_ht, t, ok):
    """State at step t - 1: the stored sequence for t > 0, the initial state for t = 0."""
    step = tl.zeros_like(out_off) + t  # as a tensor, so the comparisons below stay i1 masks
    prev = tl.load(ALL + out_off - stride_ht, mask=ok & (step > 0), other=0.0)
    return prev + tl.load(S0 + s_index * stride_ss + s_off, mask=ok & (step == 0), other=0.0)


@triton.jit
def rnn_bwd_kernel(
    R, S0, MASK, GATES, C_ALL, N_ALL, M_ALL, DH, DS_LAST, DWX, DS0,
    stride_rg, stride_rn, stride_ri,
    stride_ss, stride_sb, stride_sn,
    stride_mb, stride_mt,
    stride_hb, stride_ht, stride_hn,
    stride_gb, stride_gt, stride_gg, stride_gn,
    B, T, D,
    SLSTM: tl.constexpr, HAS_MASK: tl.constexpr, PRECISION: tl.constexpr,
    RESIDENT: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    head = tl.program_id(0)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_d = tl.arange(0, BLOCK_D)
    b_ok = offs_b < B
    d_ok = offs_d < D
    bd_ok = b_ok[:, None] & d_ok[None, :]
    # r[g]^T, held for the whole reverse sweep: rt[j, i] = r[g, head, i, j].
    r_base = R + head * stride_rn
    r_ok = d_ok[:, None] & d_ok[None, :]
    rt_i = _resident(r_base, 0, stride_rg, stride_ri, offs_d, r_ok, True, RESIDENT)
    rt_f = _resident(r_base, 1, stride_rg, stride_ri, offs_d, r_ok, True, RESIDENT)
    rt_z = _resident(r_base, 2, stride_rg, stride_ri, offs_d, r_ok, True, RESIDENT)
    rt_o = _resident(r_base, 3, stride_rg, stride_ri, offs_d, r_ok, True, RESIDENT)
    s_off = offs_b[:, None] * stride_sb + head * stride_sn + offs_d[None, :]
    dh = tl.load(DS_LAST + s_off, mask=bd_ok, other=0.0)  # (BLOCK_B, BLOCK_D) fp32
    dc = tl.load(DS_LAST + stride_ss + s_off, mask=bd_ok, other=0.0)
    dn = dc
    if SLSTM:
        dn = tl.load(DS_LAST + 2 * stride_ss + s_off, mask=bd_ok, other=0.0)
    for tt in range(T):
        t = T - 1 - tt
        out_off = offs_b[:, None] * stride_hb + t * stride_ht + head * stride_hn + offs_d[None, :]
        dh = dh + tl.load(DH + out_off, mask=bd_ok, other=0.0)
        c_t = tl.load(C_ALL + out_off, mask=bd_ok, other=0.0)
        c_prev = _state_before(C_ALL, S0, 1, stride_ss, s_off, out_off, stride_ht, t, bd_ok)
        g_ptrs = GATES + offs_b[:, None] * stride_gb + t * stride_gt + head * stride_gn + offs_d[None, :]
        p_i = tl.load(g_ptrs, mask=bd_ok, other=0.0)
        p_f = tl.load(g_ptrs + stride_gg, mask=bd_ok, other=0.0)
        z = _tanh(tl.load(g_ptrs + 2 * stride_gg, mask=bd_ok, other=0.0))
        o = tl.sigmoid(tl.load(g_ptrs + 3 * stride_gg, mask=bd_ok, other=0.0))
        if SLSTM:
            n_t = tl.load(N_ALL + out_off, mask=bd_ok, other=1.0)
            m_t = tl.load(M_ALL + out_off, mask=bd_ok, other=0.0)
            n_prev = _state_before(N_ALL, S0, 2, stride_ss, s_off, out_off, stride_ht, t, bd_ok)
            m_prev = _state_before(M_ALL, S0, 3, stride_ss, s_off, out_off, stride_ht, t, bd_ok)
            i_g = tl.exp(p_i - m_t)
            f_g = tl.where(n_prev == 0.0, 0.0, tl.exp(_logsigmoid(p_f) + m_prev - m_t))
            dc_t = dc + dh * o / n_t
            dn_t = dn - dh * o * c_t / (n_t * n_t)
            d_o = dh * (c_t / n_t) * o * (1.0 - o)
            d_i = (dc_t * z + dn_t) * i_g
            d_f = (dc_t * c_prev + dn_t * n_prev) * f_g * (1.0 - tl.sigmoid(p_f))
            d_z = dc_t * i_g * (1.0 - z * z)
            dc_prev = dc_t * f_g
            dn_prev = dn_t * f_g
        else:
            i_g = tl.sigmoid(p_i)
            f_g = tl.sigmoid(p_f)
            tc = _tanh(c_t)
            d_o = dh * tc * o * (1.0 - o)
            dc_t = dc + dh * o * (1.0 - tc * tc)
            d_i = dc_t * z * i_g * (1.0 - i_g)
            d_f = dc_t * c_prev * f_g * (1.0 - f_g)
            d_z = dc_t * i_g * (1.0 - z * z)
            dc_prev = dc_t * f_g
            dn_prev = dn
        if HAS_MASK:
            # A skipped step passed every state through: gradients do the same, gates get none.
            keep = (tl.load(MASK + offs_b * stride_mb + t * stride_mt, mask=b_ok, other=0) != 0)[:, None]
            d_i = tl.where(keep, d_i, 0.0)
            d_f = tl.where(keep, d_f, 0.0)
            d_z = tl.where(keep, d_z, 0.0)
            d_o = tl.where(keep, d_o, 0.0)
            dc_prev = tl.where(keep, dc_prev, dc)
            dn_prev = tl.where(keep, dn_prev, dn)
        dt = R.dtype.element_ty
        dh_prev = tl.zeros([BLOCK_B, BLOCK_D], tl.float32)
        dh_prev = _rdot(
            d_i.to(dt),
            rt_i,
            dh_prev,
            r_base,
            0,
            stride_rg,
            stride_ri,
            offs_d,
            r_ok,
            True,
            RESIDENT,
            PRECISION,
        )
        dh_prev = _rdot(
            d_f.to(dt),
            rt_f,
            dh_prev,
            r_base,
            1,
            stride_rg,
            stride_ri,
            offs_d,
            r_ok,
            True,
            RESIDENT,
            PRECISION,
        )
        dh_prev = _rdot(
            d_z.to(dt),
            rt_z,
            dh_prev,
            r_base,
            2,
            stride_rg,
            stride_ri,
            offs_d,
            r_ok,
            True,
            RESIDENT,
            PRECISION,
        )
        dh_prev = _rdot(
            d_o.to(dt),
            rt_o,
            dh_prev,
            r_base,
            3,
            stride_rg,
            stride_ri,
            offs_d,
            r_ok,
            True,
            RESIDENT,
            PRECISION,
        )
        if HAS_MASK:
            dh_prev = tl.where(keep, dh_prev, dh)
        dw_ptrs = DWX + offs_b[:, None] * stride_gb + t * stride_gt + head * stride_gn + offs_d[None, :]
        tl.store(dw_ptrs, d_i, mask=bd_ok)
        tl.store(dw_ptrs + stride_gg, d_f, mask=bd_ok)
        tl.store(dw_ptrs + 2 * stride_gg, d_z, mask=bd_ok)
        tl.store(dw_ptrs + 3 * stride_gg, d_o, mask=bd_ok)
        dh, dc, dn = dh_prev, dc_prev, dn_prev
    tl.store(DS0 + s_off, dh, mask=bd_ok)
    tl.store(DS0 + stride_ss + s_off, dc, mask=bd_ok)
    if SLSTM:
        tl.store(DS0 + 2 * stride_ss + s_off, dn, mask=bd_ok)
        tl.store(DS0 + 3 * stride_ss + s_off, tl.zeros_like(dn), mask=bd_ok)
