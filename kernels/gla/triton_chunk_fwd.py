"""Triton kernels for the chunkwise GLA forward: gate cumsum, chunk states, intra-chunk matrix, output.

The same algorithm as :mod:`reasonkit.kernels.gla.chunk` (GLA paper §4; fla's
``fla/ops/gla/chunk.py`` and ``fla/ops/common/chunk_h.py``), as four launches:

1. ``gate_cumsum``: b = chunk-local cumulative sum of g, float32 (B, T, H, K).
2. ``chunk_states``: one program per (K block, V block, b·h) walks the chunks in order, storing the
   state entering each chunk, h (B, NT, H, K, V), and updating it with one (BK, BT) @ (BT, BV) dot.
3. ``intra_attention``: one program per (chunk, 16-row query sub-chunk, b·h) writes its rows of
   A (B, T, H, BT) float32: blocks left of the diagonal by a dot of q ⊙ exp(b − r) and
   k ⊙ exp(r − b) (r = b at the sub-chunk's first row, so both exponents are ≤ 0), the diagonal
   block column by column in log space, zeros to the right.
4. ``chunk_output``: o = (scale·q ⊙ exp(b)) @ h_n + A @ v per (V block, chunk, b·h).

Layout is fla's (B, T, H, D), contiguous. Dots take the input dtype (bf16/fp16 use tensor cores)
and accumulate in float32; float32 inputs use IEEE dots (no TF32), so float32 results stay close
to the float64 reference. Block sizes: BT = chunk (16..64), BC = 16, BK/BV = 16..64 (powers of
two, masked at the edges), so every ``tl.dot`` tile is at least 16 wide as real GPUs require.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl

# Widest K / V tile. Tests lower it to 16 so that small dims still exercise the loops over blocks.
MAX_BLOCK = 64


def block_size(dim: int) -> int:
    """The tile width for a dimension: a power of two in [16, MAX_BLOCK] (tl.dot needs ≥ 16)."""
    return min(MAX_BLOCK, max(16, triton.next_power_of_2(dim)))


def state_blocks(BH: int, K: int, V: int) -> tuple[int, int]:
    """K / V tiles for the kernels that walk the chunks in order, one program per (K, V tile, b·h).

    Their only parallelism is across programs, so tiles narrow (down to 32) until there are about
    256 programs, enough to occupy a GPU's SMs when B·H is small (fla autotunes over 32 and 64).
    """
    BK, BV = block_size(K), block_size(V)
    while BH * triton.cdiv(K, BK) * triton.cdiv(V, BV) < 256 and max(BK, BV) > 32:
        if BV >= BK:
            BV //= 2
        else:
            BK //= 2
    return BK, BV


def dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


TUNING = [triton.Config({}, num_warps=w, num_stages=s) for w in (2, 4, 8) for s in (2, 3)]
AUTOTUNE_ENV = (
    "REASONKIT_TRITON_AUTOTUNE"  # "0": one fixed launch config (the gated-attention kernels read it too)
)


class TunedKernel:
    """A kernel launched autotuned (warps × pipeline stages per block shape, as fla does) or not.

    ``REASONKIT_TRITON_AUTOTUNE=0``, read at each launch, launches Triton's default config instead,
    which spares tests and first calls the tuning runs.
    """

    def __init__(self, kernel: Any, key: list[str]) -> None:
        self.fixed = kernel
        self.tuned = triton.autotune(configs=TUNING, key=key)(kernel)

    def __getitem__(self, grid: Any) -> Any:
        return (self.fixed if os.environ.get(AUTOTUNE_ENV, "1") == "0" else self.tuned)[grid]


def tuned(*key: str) -> Callable[[Any], Any]:
    """Decorator: a :class:`TunedKernel` on GPUs; under the interpreter (decided at import, like
    ``triton.jit`` itself) there is nothing to time, so the plain kernel."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return lambda fn: fn
    return lambda fn: TunedKernel(fn, list(key))


@triton.jit
def row_in_range(row, T, N: tl.constexpr):
    """(N,) copies of ``row < T``: masks stay vectors because the interpreter rejects scalar masks."""
    return (tl.zeros([N], dtype=tl.int32) + row) < T


@triton.jit(do_not_specialize=["T"])
def gate_cumsum_kernel(g, gc, T, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr):
    i_k, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    m = (o_t[:, None] < T) & (o_k[None, :] < K)
    rows = ((i_b.to(tl.int64) * T + o_t) * H + i_h) * K  # (BT,)
    b_g = tl.load(g + rows[:, None] + o_k[None, :], mask=m, other=0).to(tl.float32)
    tl.store(gc + rows[:, None] + o_k[None, :], tl.cumsum(b_g, axis=0), mask=m)


@tuned("K", "V", "BT", "BK", "BV")
@triton.jit(do_not_specialize=["T", "NT"])
def chunk_states_kernel(
    k,
    v,
    gc,
    h,
    h0,
    ht,
    T,
    NT,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    USE_H0: tl.constexpr,
    STORE_HT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    state_offs = o_k[:, None] * V + o_v[None, :]  # (BK, BV)

    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + i_bh.to(tl.int64) * K * V + state_offs, mask=m_kv, other=0).to(tl.float32)
    for i_t in range(NT):
        base = ((i_b.to(tl.int64) * NT + i_t) * H + i_h) * K * V
        tl.store(h + base + state_offs, b_h.to(h.dtype.element_ty), mask=m_kv)
        o_t = i_t * BT + tl.arange(0, BT)
        m_t = o_t < T
        tok = (i_b.to(tl.int64) * T + o_t) * H + i_h  # (BT,)
        last = (i_b.to(tl.int64) * T + tl.minimum(i_t * BT + BT, T) - 1) * H + i_h
        m_kt = (o_k[:, None] < K) & m_t[None, :]
        b_kt = tl.load(k + tok[None, :] * K + o_k[:, None], mask=m_kt, other=0)  # (BK, BT)
        b_gt = tl.load(gc + tok[None, :] * K + o_k[:, None], mask=m_kt, other=0)  # (BK, BT)
        b_glast = tl.load(gc + last * K + o_k, mask=o_k < K, other=0)  # (BK,)
        b_v = tl.load(v + tok[:, None] * V + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < V), other=0)
        # exponents b_C − b_s ≤ 0; padded columns hold k = 0
        b_kd = (b_kt * tl.exp(b_glast[:, None] - b_gt)).to(b_v.dtype)
        b_h = b_h * tl.exp(b_glast)[:, None] + tl.dot(b_kd, b_v, input_precision=DOT_PRECISION)
    if STORE_HT:
        tl.store(ht + i_bh.to(tl.int64) * K * V + state_offs, b_h, mask=m_kv)


@tuned("K", "BT", "BK")
@triton.jit(do_not_specialize=["T"])
def intra_attention_kernel(
    q,
    k,
    gc,
    A,
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
    i_t, i_i, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    t0 = i_t * BT + i_i * BC  # first row of this query sub-chunk
    if t0 >= T:
        return
    o_c = tl.arange(0, BC)
    o_r = t0 + o_c
    m_r = o_r < T
    rows = (i_b.to(tl.int64) * T + o_r) * H + i_h  # (BC,)
    ref = (i_b.to(tl.int64) * T + t0) * H + i_h
    dtype = k.dtype.element_ty

    for i_j in range(NC):
        b_A = tl.zeros([BC, BC], dtype=tl.float32)
        if i_j < i_i:
            cols = (i_b.to(tl.int64) * T + i_t * BT + i_j * BC + o_c) * H + i_h  # keys, all < t0 < T
            for i_k in range(tl.cdiv(K, BK)):
                o_k = i_k * BK + tl.arange(0, BK)
                m_k = o_k < K
                m_q = m_r[:, None] & m_k[None, :]
                b_q = tl.load(q + rows[:, None] * K + o_k[None, :], mask=m_q, other=0).to(tl.float32)
                b_gq = tl.load(gc + rows[:, None] * K + o_k[None, :], mask=m_q, other=0)
                b_gn = tl.load(gc + ref * K + o_k, mask=m_k, other=0)  # (BK,)
                b_kt = tl.load(k + cols[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0)  # (BK, BC)
                b_gkt = tl.load(gc + cols[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0)
                b_qr = tl.where(m_q, b_q * tl.exp(b_gq - b_gn[None, :]), 0).to(dtype)
                b_kr = (b_kt * tl.exp(b_gn[:, None] - b_gkt)).to(dtype)
                b_A += tl.dot(b_qr, b_kr, input_precision=DOT_PRECISION)
        elif i_j == i_i:
            for i_k in range(tl.cdiv(K, BK)):
                o_k = i_k * BK + tl.arange(0, BK)
                m_k = o_k < K
                m_q = m_r[:, None] & m_k[None, :]
                b_q = tl.load(q + rows[:, None] * K + o_k[None, :], mask=m_q, other=0).to(tl.float32)
                b_gq = tl.load(gc + rows[:, None] * K + o_k[None, :], mask=m_q, other=0)
                for j in range(BC):
                    key = (i_b.to(tl.int64) * T + t0 + j) * H + i_h
                    m_key = m_k & row_in_range(t0 + j, T, BK)
                    b_kj = tl.load(k + key * K + o_k, mask=m_key, other=0).to(tl.float32)
                    b_gj = tl.load(gc + key * K + o_k, mask=m_key, other=0)
                    keep = m_q & (o_c[:, None] >= j)
                    decay = tl.exp(tl.where(keep, b_gq - b_gj[None, :], float("-inf")))
                    col = tl.sum(b_q * b_kj[None, :] * decay, axis=1)  # (BC,)
                    b_A += tl.where(o_c[None, :] == j, col[:, None], 0)
        out = rows[:, None] * BT + i_j * BC + o_c[None, :]
        tl.store(A + out, b_A * scale, mask=m_r[:, None])


@tuned("K", "V", "BT", "BK", "BV")
@triton.jit(do_not_specialize=["T", "NT"])
def chunk_output_kernel(
    q,
    v,
    gc,
    h,
    A,
    o,
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
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    tok = (i_b.to(tl.int64) * T + o_t) * H + i_h  # (BT,)
    base = ((i_b.to(tl.int64) * NT + i_t) * H + i_h) * K * V
    dtype = v.dtype.element_ty

    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_q = m_t[:, None] & (o_k[None, :] < K)
        b_q = tl.load(q + tok[:, None] * K + o_k[None, :], mask=m_q, other=0).to(tl.float32)
        b_g = tl.load(gc + tok[:, None] * K + o_k[None, :], mask=m_q, other=0)
        b_h = tl.load(
            h + base + o_k[:, None] * V + o_v[None, :], mask=(o_k[:, None] < K) & m_v[None, :], other=0
        )
        b_qg = (b_q * scale * tl.exp(b_g)).to(dtype)
        b_o += tl.dot(b_qg, b_h.to(dtype), input_precision=DOT_PRECISION)
    b_A = tl.load(A + tok[:, None] * BT + tl.arange(0, BT)[None, :], mask=m_t[:, None], other=0)
    b_v = tl.load(v + tok[:, None] * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0)
    b_o += tl.dot(b_A.to(dtype), b_v, input_precision=DOT_PRECISION)
    tl.store(
        o + tok[:, None] * V + o_v[None, :], b_o.to(o.dtype.element_ty), mask=m_t[:, None] & m_v[None, :]
    )


def gate_cumsum(g: torch.Tensor, BT: int) -> torch.Tensor:
    B, T, H, K = g.shape
    gc = torch.empty(B, T, H, K, device=g.device, dtype=torch.float32)
    BK = block_size(K)
    gate_cumsum_kernel[(triton.cdiv(K, BK), triton.cdiv(T, BT), B * H)](g, gc, T, H, K, BT, BK)
    return gc


def chunk_states(
    k: torch.Tensor,
    v: torch.Tensor,
    gc: torch.Tensor,
    h0: torch.Tensor | None,
    BT: int,
    store_final: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """h (B, NT, H, K, V): the state entering each chunk (float32, or the input's half dtype), and ht."""
    B, T, H, K = k.shape
    V = v.shape[-1]
    NT = triton.cdiv(T, BT)
    state_dtype = torch.float32 if k.dtype == torch.float32 else k.dtype
    h = torch.empty(B, NT, H, K, V, device=k.device, dtype=state_dtype)
    ht = torch.empty(B, H, K, V, device=k.device, dtype=torch.float32) if store_final else None
    BK, BV = state_blocks(B * H, K, V)
    grid = (triton.cdiv(K, BK), triton.cdiv(V, BV), B * H)
    chunk_states_kernel[grid](
        k, v, gc, h, h0, ht, T, NT, H, K, V, BT, BK, BV,
        USE_H0=h0 is not None, STORE_HT=store_final, DOT_PRECISION=dot_precision(k.dtype),
    )  # fmt: skip
    return h, ht


def intra_attention(
    q: torch.Tensor, k: torch.Tensor, gc: torch.Tensor, scale: float, BT: int
) -> torch.Tensor:
    """A (B, T, H, BT) float32: scale · Σ_k q_tk k_sk exp(b_tk − b_sk) for s ≤ t in t's chunk."""
    B, T, H, K = q.shape
    BC = 16
    A = torch.empty(B, T, H, BT, device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(T, BT), BT // BC, B * H)
    intra_attention_kernel[grid](
        q, k, gc, A, scale, T, H, K, BT, BC, block_size(K), BT // BC, DOT_PRECISION=dot_precision(q.dtype)
    )
    return A


def chunk_output(
    q: torch.Tensor,
    v: torch.Tensor,
    gc: torch.Tensor,
    h: torch.Tensor,
    A: torch.Tensor,
    scale: float,
    BT: int,
) -> torch.Tensor:
    B, T, H, K = q.shape
    V = v.shape[-1]
    o = torch.empty_like(v)
    BK, BV = block_size(K), block_size(V)
    grid = (triton.cdiv(V, BV), triton.cdiv(T, BT), B * H)
    chunk_output_kernel[grid](
        q, v, gc, h, A, o, scale, T, triton.cdiv(T, BT), H, K, V, BT, BK, BV,
        DOT_PRECISION=dot_precision(q.dtype),
    )  # fmt: skip
    return o
