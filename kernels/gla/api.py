"""The public GLA functions: validate inputs once, pick an implementation, run it.

``chunk_gla`` and ``fused_recurrent_gla`` take flash-linear-attention's arguments, in its names and
order (the gate is ``g`` in one and ``gk`` in the other; ``reverse``, ``state_v_first``,
``cu_seqlens_cpu``; :mod:`.fla_args`), and return its ``(o, final_state)`` pair, so code written
against ``fla.ops.gla`` runs unchanged:

    q, k, g: (B, T, H, K)    v: (B, T, H, V)    initial_state / final_state: (N, H, K, V) float32

``g`` is the per-key log decay (``logsigmoid(x) / normaliser``; any value ≤ 0). With ``cu_seqlens``
the batch holds N packed sequences (B must be 1). The implementation follows the input's device
(Triton on CUDA, torch elsewhere); ``impl=`` or ``REASONKIT_KERNELS`` forces one of
naive / torch / triton (see :mod:`reasonkit.kernels.dispatch`).
"""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import torch

from reasonkit.kernels.dispatch import KernelError, resolve_impl
from reasonkit.kernels.gla import fla_args, varlen
from reasonkit.kernels.gla.fla_args import FlaCall
from reasonkit.kernels.gla.naive import naive_gla_step, naive_recurrent_gla

GLAResult = tuple[torch.Tensor, torch.Tensor | None]


def _check_inputs(
    op: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None,
    initial_state: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None,
) -> float:
    """Raise KernelError naming the first problem with the arguments; return the scale to use."""
    for name, x in (("q", q), ("k", k), ("v", v), ("g", g)):
        if not isinstance(x, torch.Tensor):
            raise KernelError(f"{op}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise KernelError(
                f"{op}: {name} must be 4-D (B, T, H, {'V' if name == 'v' else 'K'}), got shape {tuple(x.shape)}"
                " (fla's layout is batch, time, heads, dim; transpose head-first tensors with .transpose(1, 2))"
            )
        if not x.is_floating_point():
            raise KernelError(f"{op}: {name} must be a floating-point tensor, got {x.dtype}")
        if x.device != q.device:
            raise KernelError(
                f"{op}: {name} is on {x.device} but q is on {q.device}; move them to one device"
            )
    if k.shape != q.shape or g.shape != q.shape:
        raise KernelError(
            f"{op}: q, k and g must have the same shape (B, T, H, K), got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, g {tuple(g.shape)}"
        )
    if v.shape[:3] != q.shape[:3]:
        raise KernelError(
            f"{op}: v must be (B, T, H, V) with q's B, T, H = {tuple(q.shape[:3])}, got v {tuple(v.shape)}"
            " (mismatched batch, length or heads)"
        )
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise KernelError(f"{op}: q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    B, T, H, K = q.shape
    V = v.shape[-1]
    N = B
    if cu_seqlens is not None:
        if cu_seqlens.dim() != 1 or cu_seqlens.dtype not in (torch.int32, torch.int64):
            raise KernelError(
                f"{op}: cu_seqlens must be a 1-D int32/int64 tensor of offsets, got {cu_seqlens}"
            )
        if B != 1:
            raise KernelError(
                f"{op}: with cu_seqlens the sequences are packed into one row, so B must be 1, got B={B}; "
                "flatten the batch with q.reshape(1, -1, H, K) (and k, v, g alike)"
            )
        bounds = cu_seqlens.tolist()
        if (
            len(bounds) < 2
            or bounds[0] != 0
            or bounds[-1] != T
            or any(a > b for a, b in itertools.pairwise(bounds))
        ):
            raise KernelError(
                f"{op}: cu_seqlens must start at 0, never decrease and end at T={T}, got {bounds}"
            )
        N = len(bounds) - 1
    if initial_state is not None:
        if tuple(initial_state.shape) != (N, H, K, V):
            raise KernelError(
                f"{op}: initial_state must have shape (N, H, K, V) = {(N, H, K, V)} "
                f"(N = {'number of sequences in cu_seqlens' if cu_seqlens is not None else 'batch size'}), "
                f"got {tuple(initial_state.shape)}"
            )
        if not initial_state.is_floating_point() or initial_state.device != q.device:
            raise KernelError(f"{op}: initial_state must be a floating tensor on {q.device}")
    if scale is None:
        return K**-0.5
    if not isinstance(scale, (int, float)):
        raise KernelError(f"{op}: scale must be a Python number, got {type(scale).__name__}")
    return float(scale)


# op -> implementation -> "module:function" (imported on first use, so Triton loads only when needed)
_IMPLEMENTATIONS = {
    "chunk_gla": {
        "torch": "reasonkit.kernels.gla.chunk:chunk_gla_torch",
        "triton": "reasonkit.kernels.gla.triton_chunk:chunk_gla_triton",
    },
    "fused_recurrent_gla": {
        "torch": "reasonkit.kernels.gla.fused_recurrent:fused_recurrent_gla_torch",
        "triton": "reasonkit.kernels.gla.triton_recurrent:fused_recurrent_gla_triton",
    },
}


def _run(
    op: str,
    impl: str | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    cu_seqlens: torch.Tensor | None,
) -> GLAResult:
    """Validate, pick the implementation, and run it (varlen through padding for the fast paths)."""
    scale = _check_inputs(op, q, k, v, g, scale, initial_state, cu_seqlens)
    which = resolve_impl(q, impl)
    if which == "naive" or q.shape[1] == 0:  # nothing to parallelise over an empty sequence
        return naive_recurrent_gla(q, k, v, g, scale, initial_state, output_final_state, cu_seqlens)
    module, name = _IMPLEMENTATIONS[op][which].split(":")
    fn = getattr(importlib.import_module(module), name)
    if cu_seqlens is None:
        return fn(q, k, v, g, scale, initial_state, output_final_state)  # type: ignore[no-any-return]
    index, t_max = varlen.padded_positions(cu_seqlens.to(q.device))
    n = cu_seqlens.numel() - 1
    padded = [varlen.unpack(x, index, n, t_max) for x in (q, k, v, g)]
    o, ht = fn(*padded, scale, initial_state, output_final_state)
    return varlen.pack(o, index), ht


def _run_fla(
    op: str,
    impl: str | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    call: FlaCall,
    scale: float | None,
    output_final_state: bool,
) -> GLAResult:
    """:func:`_run` after fla's conventions: time reversed within each sequence, states transposed."""
    g = call.g
    index = None
    if call.reverse:
        _check_inputs(op, q, k, v, g, scale, call.initial_state, call.cu_seqlens)
        index = fla_args.time_reversal(q.shape[1], call.cu_seqlens, q.device)
        q, k, v, g = (x.index_select(1, index) for x in (q, k, v, g))
    o, ht = _run(op, impl, q, k, v, g, scale, call.initial_state, output_final_state, call.cu_seqlens)
    if index is not None:
        o = o.index_select(1, index)  # reversing within each sequence is its own inverse
    if call.state_v_first and ht is not None:
        ht = ht.transpose(-1, -2).contiguous()
    return o, ht


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    state_v_first: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    cu_seqlens_cpu: torch.Tensor | None = None,
    *,
    gk: torch.Tensor | None = None,
    reverse: bool = False,
    impl: str | None = None,
    **unsupported: Any,
) -> GLAResult:
    """Gated linear attention, chunkwise-parallel (fla's ``chunk_gla``): returns (o, final_state or None).

    Arguments in fla's names and order (:mod:`.fla_args`); ``gk=`` is accepted for the gate as well
    (fused_recurrent_gla's name), ``reverse=`` as in fused_recurrent_gla. o has q's dtype and v's last
    dimension; final_state is (N, H, K, V) float32 (float64 for float64 inputs; (N, H, V, K) with
    ``state_v_first``) when ``output_final_state``.
    """
    call = fla_args.resolve(
        "chunk_gla",
        gates={"g": g, "gk": gk},
        initial_state=initial_state,
        state_v_first=state_v_first,
        reverse=reverse,
        cu_seqlens=cu_seqlens,
        cu_seqlens_cpu=cu_seqlens_cpu,
        extra=unsupported,
    )
    return _run_fla("chunk_gla", impl, q, k, v, call, scale, output_final_state)


def fused_recurrent_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor | None = None,
    gv: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
    state_v_first: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    *,
    g: torch.Tensor | None = None,
    cu_seqlens_cpu: torch.Tensor | None = None,
    impl: str | None = None,
    **unsupported: Any,
) -> GLAResult:
    """Gated linear attention as a recurrence over time (fla's ``fused_recurrent_gla``).

    fla's argument names and order: the gate is ``gk`` (``g=`` is accepted too), ``gv`` must be None
    (KernelError otherwise), ``reverse`` runs the recurrence from the last token back. Same results as
    :func:`chunk_gla`; cheaper for short sequences and decoding.
    """
    call = fla_args.resolve(
        "fused_recurrent_gla",
        gates={"gk": gk, "g": g},
        gv=gv,
        initial_state=initial_state,
        state_v_first=state_v_first,
        reverse=reverse,
        cu_seqlens=cu_seqlens,
        cu_seqlens_cpu=cu_seqlens_cpu,
        extra=unsupported,
    )
    return _run_fla("fused_recurrent_gla", impl, q, k, v, call, scale, output_final_state)


def gla_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    state: torch.Tensor | None,
    scale: float | None = None,
    *,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step: q, k, g (B, H, K), v (B, H, V), state (B, H, K, V) or None for zeros.

    Returns (o (B, H, V) in q's dtype, new state (B, H, K, V) float32, float64 for float64 inputs).
    Looping it over t equals :func:`chunk_gla` over the whole sequence.
    """
    for name, x in (("q", q), ("k", k), ("v", v), ("g", g)):
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise KernelError(
                f"gla_step: {name} must be a 3-D tensor (B, H, {'V' if name == 'v' else 'K'}) for one "
                f"token, got {shape}; for whole sequences use chunk_gla"
            )
    _check_inputs("gla_step", q[:, None], k[:, None], v[:, None], g[:, None], scale, None, None)
    B, H, K = q.shape
    V = v.shape[-1]
    if state is not None and tuple(state.shape) != (B, H, K, V):
        raise KernelError(
            f"gla_step: state must have shape (B, H, K, V) = {(B, H, K, V)}, got {tuple(state.shape)}"
        )
    scale = K**-0.5 if scale is None else float(scale)
    which = resolve_impl(q, impl)
    if which == "triton":
        from reasonkit.kernels.gla.triton_recurrent import fused_recurrent_gla_triton

        o, new_state = fused_recurrent_gla_triton(
            q[:, None], k[:, None], v[:, None], g[:, None], scale, state, True
        )
        assert new_state is not None
        return o[:, 0], new_state
    dtype = (
        torch.float64
        if torch.float64 in (q.dtype, g.dtype) or (state is not None and state.dtype == torch.float64)
        else torch.float32
    )
    if state is None:
        state = q.new_zeros(B, H, K, V, dtype=dtype)
    o, new_state = naive_gla_step(q, k, v, g, state.to(dtype), scale)
    return o.to(q.dtype), new_state
