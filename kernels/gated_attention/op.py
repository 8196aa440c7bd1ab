"""The public gated-attention functions: input checks, dispatch, and the KV-cache decode step.

``gated_attention`` picks the implementation with :func:`reasonkit.kernels.dispatch.resolve_impl`
(Triton on CUDA, the SDPA composition elsewhere, the naive loop on request).
``gated_attention_step`` appends new keys/values to a cache and attends to it; the cache contract is
the simplest one a Hugging Face ``Cache`` can hold: two tensors [B, T_past, H_kv, D] that grow by
concatenation (``None`` for an empty cache).
"""

from __future__ import annotations

import torch

from reasonkit.kernels.dispatch import KernelError, resolve_impl
from reasonkit.kernels.gated_attention.naive import naive_gated_attention
from reasonkit.kernels.gated_attention.sdpa import sdpa_gated_attention

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate: torch.Tensor,
    attention_mask: torch.Tensor | None,
    where: str,
) -> None:
    for name, t in (("q", q), ("k", k), ("v", v), ("gate", gate)):
        if t.dim() != 4:
            raise KernelError(f"{where}: {name} must be 4-D [B, T, H, D], got shape {tuple(t.shape)}")
        if t.dtype not in _FLOAT_DTYPES:
            raise KernelError(f"{where}: {name} must be a floating tensor, got {t.dtype}")
        if t.device != q.device:
            raise KernelError(f"{where}: {name} is on {t.device} but q is on {q.device}; move them together")
    B, Tq, H, D = q.shape
    Bk, Tk, H_kv, Dk = k.shape
    if Bk != B or Dk != D:
        raise KernelError(f"{where}: k must be [B={B}, Tk, H_kv, D={D}], got {tuple(k.shape)}")
    if v.shape[:3] != k.shape[:3]:
        raise KernelError(
            f"{where}: v must be [B, Tk, H_kv, Dv] like k {tuple(k.shape)}, got {tuple(v.shape)}"
        )
    if H_kv == 0 or H % H_kv != 0:
        raise KernelError(
            f"{where}: q has {H} heads and k/v {H_kv}; grouped-query attention needs H % H_kv == 0"
        )
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise KernelError(f"{where}: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    Dv = v.shape[3]
    if gate.shape not in ((B, Tq, H, Dv), (B, Tq, H, 1)):
        raise KernelError(
            f"{where}: gate must be elementwise [B, Tq, H, Dv] = {(B, Tq, H, Dv)} or headwise "
            f"[B, Tq, H, 1], got {tuple(gate.shape)}"
        )
    if attention_mask is not None:
        if attention_mask.dtype != torch.bool or attention_mask.shape not in ((B, Tk), (B, Tq, Tk)):
            raise KernelError(
                f"{where}: attention_mask must be a bool key-padding mask [B, Tk] = {(B, Tk)} or a "
                f"per-query mask [B, Tq, Tk] = {(B, Tq, Tk)} (True = attend), got {attention_mask.dtype} "
                f"{tuple(attention_mask.shape)}; convert with mask.bool()"
            )
        if attention_mask.device != q.device:
            raise KernelError(f"{where}: attention_mask is on {attention_mask.device}, q on {q.device}")


def gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    impl: str | None = None,
) -> torch.Tensor:
    """Softmax attention multiplied by a sigmoid gate: o = SDPA(q, k, v) ⊙ sigmoid(gate).

    Args:
        q: [B, Tq, H, D] queries.
        k: [B, Tk, H_kv, D] keys; H % H_kv == 0 (grouped-query attention when H_kv < H).
        v: [B, Tk, H_kv, Dv] values.
        gate: pre-sigmoid gate, elementwise [B, Tq, H, Dv] or headwise [B, Tq, H, 1].
        causal: query i sees keys j <= i + Tk - Tq (bottom-right aligned, as flash-attn).
        scale: score scale, default D ** -0.5.
        attention_mask: optional bool mask, True = attend: key padding [B, Tk] (left padding), or
            one row per query [B, Tq, Tk] for any other pattern (a white-box forward's layer-path
            or latent-depth masks); combined with ``causal`` when that is True.
        impl: "naive", "torch" or "triton"; default by device (see ``REASONKIT_KERNELS``).

    Returns:
        o: [B, Tq, H, Dv] in q's dtype. A query that sees no key gets 0.
    """
    _check(q, k, v, gate, attention_mask, "gated_attention")
    B, Tq, H, _ = q.shape
    if B == 0 or Tq == 0 or k.shape[1] == 0:
        # No (query, key) pair exists, so every row is empty and gives 0 by definition.
        return q.new_zeros(B, Tq, H, v.shape[3])
    choice = resolve_impl(q, impl)
    if choice == "naive":
        return naive_gated_attention(q, k, v, gate, causal, scale, attention_mask)
    per_query = attention_mask is not None and attention_mask.dim() == 3
    if choice == "torch" or q.dtype == torch.float64 or per_query:
        # the flash kernel takes key-padding masks only; a per-query mask goes through SDPA
        # float64 is for checking, not speed: flash kernels target 16/32-bit tensor-core dots.
        return sdpa_gated_attention(q, k, v, gate, causal, scale, attention_mask)
    from reasonkit.kernels.gated_attention.flash import flash_gated_attention

    return flash_gated_attention(q, k, v, gate, causal, scale, attention_mask)


def gated_attention_step(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    gate: torch.Tensor,
    k_cache: torch.Tensor | None = None,
    v_cache: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode step: append the new keys/values to the cache and attend with the new queries.

    Args:
        q: [B, T_new, H, D] queries of the new token(s) (T_new = 1 when decoding).
        k_new, v_new: [B, T_new, H_kv, D] / [B, T_new, H_kv, Dv] their keys and values.
        gate: [B, T_new, H, Dv] or [B, T_new, H, 1] pre-sigmoid gate.
        k_cache, v_cache: [B, T_past, H_kv, D] / [B, T_past, H_kv, Dv], or None when empty.
        attention_mask: bool [B, T_past + T_new] over the whole key sequence (True = attend);
            keep the left-padding columns of the prompt in it for every later step.

    Returns:
        (o [B, T_new, H, Dv], k_cache [B, T_past + T_new, H_kv, D], v_cache [..., Dv]).
        New queries attend causally among themselves and to the whole cache.
    """
    if (k_cache is None) != (v_cache is None):
        raise KernelError("gated_attention_step: pass both k_cache and v_cache, or neither")
    if k_cache is not None and v_cache is not None:
        if k_cache.dim() != 4 or k_cache.shape[0] != k_new.shape[0] or k_cache.shape[2:] != k_new.shape[2:]:
            raise KernelError(
                f"gated_attention_step: k_cache must be [B, T_past, H_kv, D] matching k_new "
                f"{tuple(k_new.shape)}, got {tuple(k_cache.shape)}"
            )
        if v_cache.dim() != 4 or v_cache.shape[0] != v_new.shape[0] or v_cache.shape[2:] != v_new.shape[2:]:
            raise KernelError(
                f"gated_attention_step: v_cache must be [B, T_past, H_kv, Dv] matching v_new "
                f"{tuple(v_new.shape)}, got {tuple(v_cache.shape)}"
            )
        k_all = torch.cat([k_cache, k_new], dim=1)  # (B, T_past + T_new, H_kv, D)
        v_all = torch.cat([v_cache, v_new], dim=1)
    else:
        k_all, v_all = k_new, v_new
    o = gated_attention(q, k_all, v_all, gate, True, scale, attention_mask, impl=impl)
    return o, k_all, v_all
