"""Gated linear attention as a recurrence over time, in torch, with a hand-written backward.

The torch counterpart of fla's ``fused_recurrent_gla`` (``fla/ops/gla/fused_recurrent.py``): the
forward walks t = 0..T-1 keeping only the (K, V) state per head; the backward re-walks the forward
to rebuild the states for dq, then walks backward in time for dk, dv and dh0. No per-step state is
stored, so memory is O(B·H·K·V) whatever T is.

The gate gradient uses the identity every GLA kernel relies on (fla's ``chunk_gla_bwd`` does the
same): with B_t = Σ_{s≤t} g_s, every term of the output contains exp(B_t − B_s) with q_t and k_s
beside it, so ∂L/∂B_t = q_t·dq_t − k_t·dk_t (+ Σ_v S_T·dS_T at the last step, from the final
state), and dg is the reverse cumulative sum of that over time. The pairs s = t carry no decay and
cancel exactly in q·dq − k·dk; under strong decay they dominate dq and dk, so dq and dk are formed
without them for this sum (otherwise float32 loses most digits of dg), and completed afterwards.
"""

from __future__ import annotations

from typing import Any

import torch

from reasonkit.kernels.gla.naive import compute_dtype


def gate_grad_from_qk(
    q: torch.Tensor,
    dq: torch.Tensor,
    k: torch.Tensor,
    dk: torch.Tensor,
    final_state: torch.Tensor | None,
    d_final_state: torch.Tensor | None,
) -> torch.Tensor:
    """dg (B, T, H, K) from q, k (B, T, H, K) and the gradients dq, dk without their undecayed pairs.

    Undecayed pairs: (q_t, k_t) in the outputs, and the last key with the final state. So dk at
    T − 1 must leave out d_final_state's direct term, and ``final_state`` (B, H, K, V) is the final
    state without the last token's k_{T-1}ᵀ v_{T-1}. ``dq`` may be the gradient w.r.t. scale·q
    when ``q`` is scale·q: only q ⊙ dq enters.
    """
    d_cum = q * dq - k * dk  # (B, T, H, K): gradient w.r.t. the cumulative log decay B_t
    if final_state is not None and d_final_state is not None and d_cum.shape[1] > 0:
        d_cum[:, -1] += (final_state * d_final_state).sum(-1)
    # float64 accumulation: a long reverse sum of mixed-sign terms, cheap next to the rest
    return d_cum.to(torch.float64).flip(1).cumsum(1).flip(1).to(d_cum.dtype)


def complete_grads(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    do: torch.Tensor,
    dq_off: torch.Tensor,
    dk_off: torch.Tensor,
    final_off: torch.Tensor,
    d_final: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dg from the recurrence's dq, dk without undecayed pairs (all in one float dtype).

    q, k, dq_off, dk_off (B, T, H, K); v, do (B, T, H, V); final_off, d_final (B, H, K, V).
    """
    dg = gate_grad_from_qk(q, dq_off, k, dk_off, final_off, d_final)
    do_v = scale * (do * v).sum(-1, keepdim=True)  # (B, T, H, 1): the s = t pairs
    dq = dq_off + do_v * k
    dk = dk_off + do_v * q
    if q.shape[1] > 0:  # the last key's pair with the final state
        dk[:, -1] += torch.einsum("bhkv,bhv->bhk", d_final, v[:, -1])
    return dq, dk, dg


class FusedRecurrentGLA(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        g: torch.Tensor,
        scale: float,
        initial_state: torch.Tensor | None,
        output_final_state: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = compute_dtype(q, k, v, g, initial_state)
        B, T, H, K = q.shape
        V = v.shape[-1]
        state = q.new_zeros(B, H, K, V, dtype=dtype) if initial_state is None else initial_state.to(dtype)
        o = q.new_empty(B, T, H, V, dtype=dtype)
        qs, kf, vf, decay = (q.to(dtype) * scale, k.to(dtype), v.to(dtype), g.to(dtype).exp())
        for t in range(T):
            state = (
                decay[:, t, :, :, None] * state + kf[:, t, :, :, None] * vf[:, t, :, None, :]
            )  # (B, H, K, V)
            o[:, t] = torch.einsum("bhk,bhkv->bhv", qs[:, t], state)
        ctx.save_for_backward(q, k, v, g, initial_state)
        ctx.scale = scale
        ctx.dtype = dtype
        ctx.input_dtypes = (
            q.dtype,
            k.dtype,
            v.dtype,
            g.dtype,
            None if initial_state is None else initial_state.dtype,
        )
        return o.to(q.dtype), state

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor, dht: torch.Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, g, initial_state = ctx.saved_tensors
        dtype, scale = ctx.dtype, ctx.scale
        B, T, H, K = q.shape
        V = v.shape[-1]
        qf, kf, vf, decay = (q.to(dtype), k.to(dtype), v.to(dtype), g.to(dtype).exp())
        do = do.to(dtype)

        # Forward again to rebuild S_t: dq_t = scale · do_t S_tᵀ.
        state = q.new_zeros(B, H, K, V, dtype=dtype) if initial_state is None else initial_state.to(dtype)
        dq = q.new_empty(B, T, H, K, dtype=dtype)
        final_off = state
        for t in range(T):
            state = decay[:, t, :, :, None] * state  # S_t without its own k_t v_t
            dq[:, t] = scale * torch.einsum("bhv,bhkv->bhk", do[:, t], state)
            final_off = state
            state = state + kf[:, t, :, :, None] * vf[:, t, :, None, :]

        # Backward in time: dS_t = scale · q_tᵀ do_t + exp(g_{t+1}) dS_{t+1}, starting from dS_T = dht.
        d_final = q.new_zeros(B, H, K, V, dtype=dtype) if dht is None else dht.to(dtype)
        d_state = torch.zeros_like(d_final)
        dk = q.new_empty(B, T, H, K, dtype=dtype)
        dv = q.new_empty(B, T, H, V, dtype=dtype)
        for t in range(T - 1, -1, -1):
            dk[:, t] = torch.einsum("bhkv,bhv->bhk", d_state, vf[:, t])  # without undecayed pairs
            if t == T - 1:
                d_state = d_state + d_final
            d_state = d_state + scale * qf[:, t, :, :, None] * do[:, t, :, None, :]  # (B, H, K, V)
            dv[:, t] = torch.einsum("bhkv,bhk->bhv", d_state, kf[:, t])
            d_state = decay[:, t, :, :, None] * d_state
        dq, dk, dg = complete_grads(qf, kf, vf, do, dq, dk, final_off, d_final, scale)
        dh0 = None if initial_state is None else d_state.to(initial_state.dtype)
        dq_dtype, dk_dtype, dv_dtype, dg_dtype, _ = ctx.input_dtypes
        return dq.to(dq_dtype), dk.to(dk_dtype), dv.to(dv_dtype), dg.to(dg_dtype), None, dh0, None


def fused_recurrent_gla_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Equal-length batch; validated inputs (see :func:`reasonkit.kernels.gla.fused_recurrent_gla`)."""
    o, ht = FusedRecurrentGLA.apply(q, k, v, g, scale, initial_state, output_final_state)
    return o, (ht if output_final_state else None)
