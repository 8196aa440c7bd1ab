"""The intra-chunk GLA attention matrix and its gradients, kept finite under strong decay.

Within a chunk of C steps with chunk-local cumulative log decay b (…, C, K):

    A_ts = Σ_k q_tk k_sk exp(b_tk − b_sk)   for s ≤ t,   0 above the diagonal.

Factoring exp(b_t − b_s) = exp(b_t − r) · exp(r − b_s) around a reference r turns A into a matmul,
but a factor with a positive exponent overflows once the decay between r and the key passes ~88
nats in float32 (g = logsigmoid(x) / 0.1 gets there in ~10 steps). So the factorisation is used
only where it is safe, measured by the span of a block (its largest decay over K, in nats):

* chunks with span ≤ ``SAFE_SPAN``: one matmul of q ⊙ exp(b − b_0) with k ⊙ exp(b_0 − b); the
  second factor is ≥ 1 but at most exp(SAFE_SPAN). Typical gates (fla's normaliser 16) stay here.
* steeper chunks are cut into 16-step sub-chunks, as fla does
  (``chunk_gla_fwd_A_kernel_intra_sub_inter`` / ``..._intra_sub_intra``): query sub-chunk i
  against earlier keys uses the reference r_i = b at its first row, which lies between every such
  key and query, so both exponents are ≤ 0; the diagonal 16 × 16 blocks are factorised around r_i
  when their own span is safe, and otherwise formed as the (16, 16, K) tensor exp(b_t − b_s)
  directly in log space, masked before exponentiating (the slow path g / 0.1 always takes).

Rounding is the same either way: all exponents come from the same float32 differences b − r
(taken from float64 b by the caller). The pairs s = t (no decay: q_t·k_t) are kept apart, because
the gate gradient must be formed without them (see ``fused_recurrent.py``).

Shapes: q, k, b (…, C, K) with C a multiple of 16; "…" is any batch of chunks, e.g. (B, H, NT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SUB_CHUNK = 16
# Largest decay (nats) across a block for which it is factorised: factors stay within exp(±30).
SAFE_SPAN = 30.0


def _span(b: torch.Tensor) -> torch.Tensor:
    """Decay (nats) from the first to the last row of each block, max over K: (…, R, K) -> (…)."""
    return (b[..., 0, :] - b[..., -1, :]).amax(-1)


def _factors(b_first: torch.Tensor, b: torch.Tensor, steep: torch.Tensor, dtype: torch.dtype):  # type: ignore[no-untyped-def]
    """exp(b − b_first) (≤ 1) and exp(b_first − b) (zero in steep blocks, where it may overflow)."""
    local = (b - b_first).to(dtype)  # (…, R, K), ≤ 0
    inverse = torch.where(steep[..., None, None], 0.0, (-local).exp())
    return local.exp(), inverse


@dataclass
class SubChunkPieces:
    """Steep chunks, flattened to (n, C, K) and cut into ns = C / 16 sub-chunks."""

    q_sub: torch.Tensor  # (n, ns, 16, K)
    k_sub: torch.Tensor  # (n, ns, 16, K)
    q_to_ref: torch.Tensor  # (n, ns, 16, K): exp(b − r_i)
    q_ref: torch.Tensor  # (n, ns, 16, K): q ⊙ exp(b − r_i)
    key_to_ref: torch.Tensor  # (n, ns, C, K): exp(r_i − b_s), zero unless s < 16·i
    k_ref: torch.Tensor  # (n, ns, C, K): k ⊙ key_to_ref
    ref_to_key: torch.Tensor  # (n, ns, 16, K): exp(r_i − b) in safe sub-chunks, else 0
    k_inv: torch.Tensor  # (n, ns, 16, K): k ⊙ ref_to_key
    steep: torch.Tensor  # (m,) flat indices of the sub-chunks that are steep themselves
    steep_decay: torch.Tensor  # (m, 16, 16, K): exp(b_t − b_s) for s < t there, else 0


def _sub_chunk_pieces(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> SubChunkPieces:
    n, C, K = q.shape
    ns = C // SUB_CHUNK
    q_sub, k_sub, b_sub = (x.reshape(n, ns, SUB_CHUNK, K) for x in (q, k, b))
    ref = b_sub[..., :1, :]  # (n, ns, 1, K)
    steep_mask = _span(b_sub) > SAFE_SPAN  # (n, ns)
    q_to_ref, ref_to_key = _factors(ref, b_sub, steep_mask, q.dtype)

    before_sub = (
        torch.arange(C, device=q.device)[None, :] < (torch.arange(ns, device=q.device) * SUB_CHUNK)[:, None]
    )
    log_key_to_ref = (ref - b[:, None, :, :]).to(q.dtype)  # (n, ns, C, K)
    key_to_ref = log_key_to_ref.masked_fill_(~before_sub[..., None], float("-inf")).exp_()

    steep = steep_mask.reshape(-1).nonzero().squeeze(1)
    local = (b_sub - ref).to(q.dtype).reshape(-1, SUB_CHUNK, K)[steep]  # (m, 16, K)
    below = torch.ones(SUB_CHUNK, SUB_CHUNK, dtype=torch.bool, device=q.device).tril(-1)  # (t, s)
    log_diag = local[:, :, None, :] - local[:, None, :, :]  # (m, 16, 16, K)
    steep_decay = log_diag.masked_fill_(~below[..., None], float("-inf")).exp_()
    return SubChunkPieces(
        q_sub, k_sub, q_to_ref, q_sub * q_to_ref, key_to_ref, k[:, None] * key_to_ref,
        ref_to_key, k_sub * ref_to_key, steep, steep_decay,
    )  # fmt: skip


@dataclass
class IntraPieces:
    """What the forward and the backward share, for chunks (…, C, K) flattened to (N, C, K)."""

    shape: torch.Size  # (…, C, K)
    q: torch.Tensor  # (N, C, K)
    k: torch.Tensor  # (N, C, K)
    to_first: torch.Tensor  # (N, C, K): exp(b − b_0)
    from_first: torch.Tensor  # (N, C, K): exp(b_0 − b) in safe chunks, else 0
    steep: torch.Tensor  # (n,) indices of the steep chunks
    sub: SubChunkPieces | None


def intra_pieces(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> IntraPieces:
    shape = q.shape
    C, K = shape[-2:]
    q, k, b = (x.reshape(-1, C, K) for x in (q, k, b))
    steep_mask = _span(b) > SAFE_SPAN  # (N,)
    to_first, from_first = _factors(b[:, :1], b, steep_mask, q.dtype)
    steep = steep_mask.nonzero().squeeze(1)
    sub = _sub_chunk_pieces(q[steep], k[steep], b[steep]) if steep.numel() else None
    return IntraPieces(shape, q, k, to_first, from_first, steep, sub)


def _diagonal_blocks(x: torch.Tensor) -> torch.Tensor:
    """(n, ns, 16, C) -> (n, ns, 16, 16): the columns of each row block that lie in its own sub-chunk."""
    n, ns, sub, _ = x.shape
    return x.reshape(n, ns, sub, ns, sub).diagonal(dim1=-4, dim2=-2).permute(0, 3, 1, 2)


def _put(x: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x with its leading-dim entries ``index`` replaced by ``rows``."""
    flat = x.reshape(-1, *rows.shape[1:])
    return flat.index_copy(0, index, rows).view(x.shape)


def _sub_attention_strict(p: SubChunkPieces) -> torch.Tensor:
    n, ns, sub, _ = p.q_sub.shape
    A = p.q_ref @ p.k_ref.transpose(-1, -2)  # (n, ns, 16, C), zero from the own sub-chunk onward
    diag = (p.q_ref @ p.k_inv.transpose(-1, -2)).tril(-1)  # (n, ns, 16, 16)
    if p.steep.numel():
        K = p.q_sub.shape[-1]
        q_s, k_s = p.q_sub.reshape(-1, sub, K)[p.steep], p.k_sub.reshape(-1, sub, K)[p.steep]
        diag = _put(diag, p.steep, torch.einsum("mtsk,msk->mts", q_s[:, :, None, :] * p.steep_decay, k_s))
    _diagonal_blocks(A).copy_(diag)
    return A.reshape(n, ns * sub, ns * sub)


def intra_attention(p: IntraPieces) -> torch.Tensor:
    """A (…, C, C), lower-triangular with its diagonal."""
    C = p.q.shape[1]
    A = ((p.q * p.to_first) @ (p.k * p.from_first).transpose(-1, -2)).tril(-1)  # (N, C, C)
    if p.sub is not None:
        A = A.index_copy(0, p.steep, _sub_attention_strict(p.sub))
    A = A + torch.diag_embed((p.q * p.k).sum(-1))  # the undecayed pairs s = t
    return A.reshape(*p.shape[:-2], C, C)


def _sub_backward(p: SubChunkPieces, dA: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, ns, sub, K = p.q_sub.shape
    C = ns * sub
    dA_rows = dA.reshape(n, ns, sub, C)  # (n, ns, 16, C)
    dA_diag = _diagonal_blocks(dA_rows)  # (n, ns, 16, 16), strictly lower
    # key_to_ref is zero from the own sub-chunk onward, so whole row blocks of dA can be used.
    dq = p.q_to_ref * (dA_rows @ p.k_ref)  # (n, ns, 16, K)
    dk = (p.key_to_ref * (dA_rows.transpose(-1, -2) @ p.q_ref)).sum(1)  # (n, C, K)
    dq_diag = p.q_to_ref * (dA_diag @ p.k_inv)  # zero in steep sub-chunks, filled in below
    dk_diag = p.ref_to_key * (dA_diag.transpose(-1, -2) @ p.q_ref)
    if p.steep.numel():
        dA_s = dA_diag.reshape(-1, sub, sub)[p.steep]
        q_s, k_s = p.q_sub.reshape(-1, sub, K)[p.steep], p.k_sub.reshape(-1, sub, K)[p.steep]
        dq_diag = _put(dq_diag, p.steep, torch.einsum("mts,mtsk,msk->mtk", dA_s, p.steep_decay, k_s))
        dk_diag = _put(dk_diag, p.steep, torch.einsum("mts,mtsk,mtk->msk", dA_s, p.steep_decay, q_s))
    dq = dq + dq_diag
    return dq.reshape(n, C, K), dk + dk_diag.reshape(n, C, K)


def intra_attention_backward(p: IntraPieces, dA: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dq, dk (…, C, K) of Σ dA ⊙ A for dA (…, C, C) lower-triangular, leaving out the pairs s = t.

    The caller adds those (dA_tt k_t to dq, dA_tt q_t to dk) after forming the gate gradient.
    """
    C = p.q.shape[1]
    dA = dA.reshape(-1, C, C).tril(-1)
    dq = p.to_first * (dA @ (p.k * p.from_first))  # (N, C, K)
    dk = p.from_first * (dA.transpose(-1, -2) @ (p.q * p.to_first))
    if p.sub is not None:
        dq_s, dk_s = _sub_backward(p.sub, dA[p.steep])
        dq, dk = dq.index_copy(0, p.steep, dq_s), dk.index_copy(0, p.steep, dk_s)
    return dq.reshape(p.shape), dk.reshape(p.shape)
