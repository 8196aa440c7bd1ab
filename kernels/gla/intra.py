"""The intra-chunk GLA attention matrix and its gradients, kept finite under strong decay.

Within a chunk of C steps with chunk-local cumulative log decay b (…, C, K):

    A_ts = Σ_k q_tk k_sk exp(b_tk − b_sk)   for s ≤ t,   0 above the diagonal.

The factorisation (q ⊙ exp(b)) (k ⊙ exp(−b))ᵀ turns this into one matmul but overflows once the
decay over a chunk passes ~88 nats in float32 (g = logsigmoid(x) / 0.1 gets there in ~10 steps).
Like fla (``chunk_gla_fwd_A_kernel_intra_sub_inter`` / ``..._intra_sub_intra``) we cut the chunk
into 16-step sub-chunks:

* query sub-chunk i against earlier key positions s < 16·i: pick the reference r_i = b at the first
  row of sub-chunk i, which lies between every such key and query, and factor
  exp(b_t − b_s) = exp(b_t − r_i) · exp(r_i − b_s); both exponents are ≤ 0, so the matmul of
  q ⊙ exp(b − r_i) with k ⊙ exp(r_i − b) never overflows;
* within sub-chunk i (the diagonal blocks) the (16, 16, K) tensor exp(b_t − b_s) is formed
  directly in log space, masked before exponentiating; the pairs s = t (no decay: q_t·k_t) are
  kept apart, because the gate gradient must be formed without them (see ``fused_recurrent.py``).

Exponents are differences of cumulative sums; they are taken in b's precision (the caller passes
float64 b) for the small tensors, and from sub-chunk-local sums for the large diagonal tensor, so
that rounding scales with the decay inside a sub-chunk rather than inside the whole chunk.

Shapes: q, k, b (…, C, K) with C a multiple of 16; "…" is any batch of chunks, e.g. (B, H, NT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SUB_CHUNK = 16


@dataclass
class IntraPieces:
    """Sub-chunked factors shared by the forward and the backward (ns = C / 16 sub-chunks)."""

    q_sub: torch.Tensor  # (…, ns, 16, K)
    k_sub: torch.Tensor  # (…, ns, 16, K)
    q_ref: torch.Tensor  # (…, ns, 16, K): q ⊙ exp(b − r_i)
    q_to_ref: torch.Tensor  # (…, ns, 16, K): exp(b − r_i)
    key_to_ref: torch.Tensor  # (…, ns, C, K): exp(r_i − b_s), zero unless s < 16·i
    k_ref: torch.Tensor  # (…, ns, C, K): k ⊙ key_to_ref
    diag_decay: torch.Tensor  # (…, ns, 16, 16, K): exp(b_t − b_s) for s < t, else 0


def intra_pieces(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> IntraPieces:
    *batch, C, K = q.shape
    ns = C // SUB_CHUNK
    q_sub = q.reshape(*batch, ns, SUB_CHUNK, K)
    k_sub = k.reshape(*batch, ns, SUB_CHUNK, K)
    b_sub = b.reshape(*batch, ns, SUB_CHUNK, K)
    ref = b_sub[..., :1, :]  # (…, ns, 1, K): b at the first row of each query sub-chunk
    local = (b_sub - ref).to(q.dtype)  # (…, ns, 16, K), ≤ 0 and decreasing
    q_to_ref = local.exp()

    position = torch.arange(C, device=q.device)
    before_sub = position[None, :] < (torch.arange(ns, device=q.device) * SUB_CHUNK)[:, None]  # (ns, C)
    log_key_to_ref = (ref - b[..., None, :, :]).to(q.dtype)  # (…, ns, C, K)
    key_to_ref = log_key_to_ref.masked_fill_(~before_sub[..., None], float("-inf")).exp_()

    below = torch.ones(SUB_CHUNK, SUB_CHUNK, dtype=torch.bool, device=q.device).tril(-1)  # (t, s)
    log_diag = local[..., :, None, :] - local[..., None, :, :]  # (…, ns, 16, 16, K)
    diag_decay = log_diag.masked_fill_(~below[..., None], float("-inf")).exp_()
    return IntraPieces(
        q_sub, k_sub, q_sub * q_to_ref, q_to_ref, key_to_ref, k[..., None, :, :] * key_to_ref, diag_decay
    )


def _diagonal_blocks(x: torch.Tensor) -> torch.Tensor:
    """(…, ns, 16, C) -> (…, ns, 16, 16): the columns of each row block that lie in its own sub-chunk."""
    *batch, ns, sub, _ = x.shape
    blocks = x.reshape(*batch, ns, sub, ns, sub)
    return blocks.diagonal(dim1=-4, dim2=-2).permute(*range(len(batch)), -1, -3, -2)


def intra_attention(p: IntraPieces) -> torch.Tensor:
    """A (…, C, C), lower-triangular with its diagonal."""
    *batch, ns, sub, _ = p.q_sub.shape
    A = p.q_ref @ p.k_ref.transpose(-1, -2)  # (…, ns, 16, C), zero from the own sub-chunk onward
    diag = torch.einsum("...tsk,...sk->...ts", p.q_sub[..., :, None, :] * p.diag_decay, p.k_sub)
    diag = diag + torch.diag_embed((p.q_sub * p.k_sub).sum(-1))  # the undecayed pairs s = t
    _diagonal_blocks(A).copy_(diag)
    return A.reshape(*batch, ns * sub, ns * sub)


def intra_attention_backward(p: IntraPieces, dA: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dq, dk (…, C, K) of Σ dA ⊙ A for dA (…, C, C) lower-triangular, leaving out the pairs s = t.

    The caller adds those (dA_tt k_t to dq, dA_tt q_t to dk) after forming the gate gradient.
    """
    *batch, ns, sub, K = p.q_sub.shape
    C = ns * sub
    dA_rows = dA.reshape(*batch, ns, sub, C)  # (…, ns, 16, C)
    dA_diag = _diagonal_blocks(dA_rows)  # (…, ns, 16, 16)
    # key_to_ref is zero from the own sub-chunk onward, so whole row blocks of dA can be used.
    dq = p.q_to_ref * (dA_rows @ p.k_ref)  # (…, ns, 16, K)
    dq = dq + torch.einsum("...ts,...tsk,...sk->...tk", dA_diag, p.diag_decay, p.k_sub)
    dk = (p.key_to_ref * (dA_rows.transpose(-1, -2) @ p.q_ref)).sum(-3)  # (…, C, K)
    dk_diag = torch.einsum("...ts,...tsk,...tk->...sk", dA_diag, p.diag_decay, p.q_sub)  # (…, ns, 16, K)
    return dq.reshape(*batch, C, K), dk + dk_diag.reshape(*batch, C, K)
