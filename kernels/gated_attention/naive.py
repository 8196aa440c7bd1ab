"""Reference gated softmax attention: a plain loop over query positions that defines the op.

Gated attention (Qiu et al., "Gated Attention for Large Language Models", arXiv 2505.06708, the
attention of Qwen3-Next) multiplies the output of scaled dot-product attention by a sigmoid gate
computed from the layer input:

    o[b, i, h] = sigmoid(gate[b, i, h]) * Σ_j softmax_j(scale · q[b, i, h] · k[b, j, h'])  v[b, j, h']

over the keys j that query i may see, where h' = h // (H / H_kv) is the key/value head of query head
h (grouped-query attention). Query i sees key j when the mask keeps (i, j) — a key-padding mask
[B, Tk] keeps j for every query, a per-query mask [B, Tq, Tk] decides each pair — and, if causal,
j ≤ i + (Tk − Tq): the causal mask is aligned to the bottom-right corner, as in flash-attn, so a
chunk of new queries attends to a longer KV cache. A query that sees no key outputs 0 (never NaN).

Layout [B, T, H, D] throughout (as in flash-attn and fla, not SDPA's [B, H, T, D]).
This file is slow on purpose: the fast paths are tested against it in float64.
"""

from __future__ import annotations

import torch


def naive_gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """o = softmax attention ⊙ sigmoid(gate); shapes as in :func:`reasonkit.kernels.gated_attention`."""
    B, Tq, H, D = q.shape
    Tk, H_kv, Dv = k.shape[1], k.shape[2], v.shape[3]
    group = H // H_kv
    scale = D**-0.5 if scale is None else scale
    kh = k.repeat_interleave(group, dim=2).transpose(1, 2)  # (B, H, Tk, D): kv head of each query head
    vh = v.repeat_interleave(group, dim=2).transpose(1, 2)  # (B, H, Tk, Dv)
    key_pos = torch.arange(Tk, device=q.device)
    rows = []
    for i in range(Tq):
        visible = torch.ones(B, 1, Tk, dtype=torch.bool, device=q.device)  # (B, 1, Tk)
        if causal:
            visible &= key_pos <= i + Tk - Tq
        if attention_mask is not None:  # key padding (B, Tk) or per query (B, Tq, Tk)
            visible &= (
                attention_mask[:, None, :] if attention_mask.dim() == 2 else attention_mask[:, i, None, :]
            )
        s = (kh @ q[:, i, :, :, None]).squeeze(-1) * scale  # (B, H, Tk)
        # Subtracting the max of the visible scores changes nothing mathematically; masked scores
        # are replaced before exp so neither values nor gradients can become inf/NaN.
        m = torch.where(visible, s, float("-inf")).amax(-1, keepdim=True).detach()
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        p = torch.where(visible, torch.exp(torch.where(visible, s, m) - m), torch.zeros_like(s))
        denom = p.sum(-1, keepdim=True)
        denom = torch.where(denom > 0, denom, torch.ones_like(denom))  # a row with no key gives 0
        rows.append(((p / denom)[:, :, None, :] @ vh).squeeze(2))  # (B, H, Dv)
    o = torch.stack(rows, dim=1) if rows else q.new_zeros(B, 0, H, Dv)  # (B, Tq, H, Dv)
    return o * torch.sigmoid(gate)
