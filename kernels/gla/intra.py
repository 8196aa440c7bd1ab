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
  directly in log space, masked above the diagonal before exponentiating.

Shapes: q, k, b (…, C, K) with C a multiple of 16; "…" is any batch of chunks, e.g. (B, H, NT).
"""

from __future__ import annotations

import torch

SUB_CHUNK = 16


def _pieces(
    q: torch.Tensor, k: torch.Tensor, b: torch.Tensor, strict: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sub-chunked factors shared by the forward and the backward.

    Returns q_sub, k_sub (…, ns, 16, K); q_ref = q ⊙ exp(b − r_i) (…, ns, 16, K);
    key_to_ref = exp(r_i − b_s) masked to s < 16·i (…, ns, C, K); k_ref = k ⊙ key_to_ref;
    diag_decay = exp(b_t − b_s) masked to s ≤ t, or s < t when ``strict`` (…, ns, 16, 16, K).
    """
    *batch, C, K = q.shape
    ns = C // SUB_CHUNK
    q_sub = q.reshape(*batch, ns, SUB_CHUNK, K)
    k_sub = k.reshape(*batch, ns, SUB_CHUNK, K)
    b_sub = b.reshape(*batch, ns, SUB_CHUNK, K)
    ref = b_sub[..., :1, :]  # (…, ns, 1, K): b at the first row of each query sub-chunk
    q_ref = q_sub * (b_sub - ref).to(q.dtype).exp()

    position = torch.arange(C, device=q.device)
    before_sub = position[None, :] < (torch.arange(ns, device=q.device) * SUB_CHUNK)[:, None]  # (ns, C)
    log_key_to_ref = ref - b[..., None, :, :]  # (…, ns, C, K)
    key_to_ref = log_key_to_ref.to(q.dtype).masked_fill(~before_sub[..., None], float("-inf")).exp()
    k_ref = k[..., None, :, :] * key_to_ref  # (…, ns, C, K)

    causal = torch.ones(SUB_CHUNK, SUB_CHUNK, dtype=torch.bool, device=q.device).tril(-1 if strict else 0)
    log_diag = b_sub[..., :, None, :] - b_sub[..., None, :, :]  # (…, ns, 16, 16, K)
    diag_decay = log_diag.to(q.dtype).masked_fill(~causal[..., None], float("-inf")).exp()
    return q_sub, k_sub, q_ref, key_to_ref, k_ref, diag_decay


def _diagonal_blocks(x: torch.Tensor) -> torch.Tensor:
    """(…, ns, 16, C) -> (…, ns, 16, 16): the columns of each row block that lie in its own sub-chunk."""
    *batch, ns, sub, _ = x.shape
    blocks = x.reshape(*batch, ns, sub, ns, sub)
    return blocks.diagonal(dim1=-4, dim2=-2).permute(*range(len(batch)), -1, -3, -2)


def intra_attention(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A (…, C, C), lower-triangular (diagonal included)."""
    *batch, C, _ = q.shape
    q_sub, k_sub, q_ref, _, k_ref, diag_decay = _pieces(q, k, b)
    A = q_ref @ k_ref.transpose(-1, -2)  # (…, ns, 16, C), zero from the own sub-chunk onward
    diag = torch.einsum("...tk,...sk,...tsk->...ts", q_sub, k_sub, diag_decay)  # (…, ns, 16, 16)
    _diagonal_blocks(A).copy_(diag)
    return A.reshape(*batch, C, C)


def intra_attention_backward(
    q: torch.Tensor, k: torch.Tensor, b: torch.Tensor, dA: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dq, dk (…, C, K) of Σ dA ⊙ A for dA (…, C, C) lower-triangular, leaving out the diagonal.

    The diagonal (A_tt = q_t·k_t, no decay) is left to the caller, because the gate gradient
    q·dq − k·dk must be formed without it: its two contributions cancel exactly, and under strong
    decay they dwarf the decay-dependent terms, so subtracting them would lose all precision.
    """
    *batch, C, K = q.shape
    ns = C // SUB_CHUNK
    q_sub, k_sub, q_ref, key_to_ref, k_ref, diag_decay = _pieces(q, k, b, strict=True)
    dA_rows = dA.reshape(*batch, ns, SUB_CHUNK, C)  # (…, ns, 16, C)
    dA_diag = _diagonal_blocks(dA_rows)  # (…, ns, 16, 16)

    # The off-diagonal part reads dA only where key_to_ref is nonzero (s < 16·i), so the full row
    # block can be used as it is.
    b_sub = b.reshape(*batch, ns, SUB_CHUNK, K)
    q_to_ref = (b_sub - b_sub[..., :1, :]).to(q.dtype).exp()  # (…, ns, 16, K)
    dq = q_to_ref * (dA_rows @ k_ref)  # (…, ns, 16, K)
    dq = dq + torch.einsum("...ts,...sk,...tsk->...tk", dA_diag, k_sub, diag_decay)
    dk = (key_to_ref * (dA_rows.transpose(-1, -2) @ q_ref)).sum(-3)  # (…, C, K)
    dk_diag = torch.einsum("...ts,...tk,...tsk->...sk", dA_diag, q_sub, diag_decay)  # (…, ns, 16, K)
    dk = dk + dk_diag.reshape(*batch, C, K)
    return dq.reshape(*batch, C, K), dk
