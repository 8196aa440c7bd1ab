"""Chunkwise GLA on the GPU: the autograd Function over the Triton kernels.

Forward: gate cumsum → chunk states → intra-chunk matrix → output
(:mod:`~reasonkit.kernels.gla.triton_chunk_fwd`). Backward: chunk states again (not stored, as in
fla), state gradients, dA, dv, then dq / dk / dg (:mod:`~reasonkit.kernels.gla.triton_chunk_bwd`).
The gate cumsum and the intra-chunk matrix A (one float32 per token, head and chunk position) are
kept from the forward.
"""

from __future__ import annotations

from typing import Any

import torch

from reasonkit.kernels.dispatch import KernelError
from reasonkit.kernels.gla.chunk import chunk_size_for
from reasonkit.kernels.gla.triton_chunk_bwd import attention_grad, qk_gate_grads, state_grads, value_grad
from reasonkit.kernels.gla.triton_chunk_fwd import chunk_output, chunk_states, gate_cumsum, intra_attention

TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_triton_inputs(op: str, *tensors: torch.Tensor | None) -> None:
    for x in tensors:
        if x is not None and x.dtype not in TRITON_DTYPES:
            raise KernelError(
                f"{op}: the Triton kernels take float16, bfloat16 or float32, got {x.dtype}; "
                "use impl='torch' (or REASONKIT_KERNELS=torch) for float64"
            )


class ChunkGLATriton(torch.autograd.Function):
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
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v, g = (x.contiguous() for x in (q, k, v, g))
        h0 = None if initial_state is None else initial_state.contiguous()
        BT = chunk_size_for(q.shape[1])
        gc = gate_cumsum(g, BT)  # (B, T, H, K) float32
        h, ht = chunk_states(k, v, gc, h0, BT, store_final=output_final_state)
        A = intra_attention(q, k, gc, scale, BT)  # (B, T, H, BT) float32
        o = chunk_output(q, v, gc, h, A, scale, BT)
        ctx.save_for_backward(q, k, v, g, gc, A, h0)
        ctx.scale, ctx.BT = scale, BT
        ctx.set_materialize_grads(False)
        return o, ht

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor | None, dht: torch.Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, g, gc, A, h0 = ctx.saved_tensors
        scale, BT = ctx.scale, ctx.BT
        do = torch.zeros_like(v) if do is None else do.contiguous()
        dht = None if dht is None else dht.contiguous()
        h, _ = chunk_states(k, v, gc, h0, BT, store_final=False)
        dh, dh0 = state_grads(q, do, gc, dht, scale, BT, want_dh0=h0 is not None)
        dA = attention_grad(v, do, BT)  # (B, T, H, BT) float32
        dv = value_grad(k, do, gc, A, dh, BT)
        dq, dk, dg = qk_gate_grads(q, k, v, g, do, gc, h, dh, dA, scale, BT)
        if dh0 is not None and h0 is not None:
            dh0 = dh0.to(h0.dtype)
        return dq, dk, dv, dg, None, dh0, None


def chunk_gla_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Equal-length batch; validated inputs (see :func:`reasonkit.kernels.gla.chunk_gla`)."""
    check_triton_inputs("chunk_gla", q, g, initial_state)
    o, ht = ChunkGLATriton.apply(q, k, v, g, scale, initial_state, output_final_state)
    return o, ht
