"""Gated attention on any device by composing PyTorch's scaled_dot_product_attention with the gate.

The definition is in :mod:`reasonkit.kernels.gated_attention.naive`; this path transposes to SDPA's
[B, H, T, D] layout, expands grouped key/value heads, builds one boolean mask from the bottom-right
causal rule and the key-padding mask, and multiplies by sigmoid(gate). Autograd gives the backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _keep_mask(
    Tq: int, Tk: int, causal: bool, attention_mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean [B or 1, 1, Tq, Tk] mask of the (query, key) pairs attended to; None when all are."""
    keep = None
    if causal:
        # Bottom-right alignment: query i sees keys j <= i + Tk - Tq.
        keep = torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril(diagonal=Tk - Tq)[None, None]
    if attention_mask is not None:
        # key padding (B, Tk) or one mask row per query (B, Tq, Tk)
        pad = attention_mask[:, None, None, :] if attention_mask.dim() == 2 else attention_mask[:, None]
        keep = pad if keep is None else keep & pad
    return keep


def sdpa_gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """o = SDPA(q, k, v) ⊙ sigmoid(gate) in layout [B, T, H, D]; rows that see no key give 0."""
    Tq, H = q.shape[1], q.shape[2]
    Tk, H_kv = k.shape[1], k.shape[2]
    group = H // H_kv
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
    if group > 1:
        kh = kh.repeat_interleave(group, dim=1)  # (B, H, Tk, D)
        vh = vh.repeat_interleave(group, dim=1)
    if causal and attention_mask is None and Tq == Tk:
        o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
        return o.transpose(1, 2) * torch.sigmoid(gate)
    keep = _keep_mask(Tq, Tk, causal, attention_mask, q.device)
    empty_rows = None
    if keep is not None:
        has_key = keep.any(-1, keepdim=True)  # (B or 1, 1, Tq, 1)
        if not bool(has_key.all()):
            # SDPA returns NaN for a row with no key; let such rows see every key, then zero them.
            empty_rows = ~has_key
            keep = keep | empty_rows
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=keep, scale=scale)  # (B, H, Tq, Dv)
    if empty_rows is not None:
        o = o.masked_fill(empty_rows, 0.0)
    return o.transpose(1, 2) * torch.sigmoid(gate)
