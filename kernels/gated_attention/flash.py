"""Fused gated flash attention for CUDA: launches the Triton kernels and wires them into autograd.

Kernels and the math of the fused gate: :mod:`.flash_fwd` and :mod:`.flash_bwd`.
Block sizes are autotuned on GPUs (keyed on power-of-two buckets of Tq and Tk, so decoding with a
growing cache does not retune every step). ``REASONKIT_TRITON_AUTOTUNE=0`` launches one fixed
config instead (correctness tests: autotuning compiles ~19 variants per shape class); under
``TRITON_INTERPRET=1`` (CPU tests) fixed 32-wide blocks cover several tiles and ragged edges.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import triton

from reasonkit.kernels.dispatch import KernelError, triton_interpreting
from reasonkit.kernels.gated_attention.flash_bwd import bwd_dkdv_kernel, bwd_dq_kernel, bwd_preprocess_kernel
from reasonkit.kernels.gated_attention.flash_fwd import fwd_kernel

_INTERPRET = triton_interpreting()  # triton.jit decides interpretation at import time too
AUTOTUNE_ENV = "REASONKIT_TRITON_AUTOTUNE"
# Without autotuning: tiles that fit in shared memory for bf16/fp16/fp32 up to D = 128 (ptxas sm_90).
_FIXED_FWD: dict[str, int] = {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}
_FIXED_BWD: dict[str, int] = {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2}


def _autotuned(kernel: Any, shapes: list[tuple[int, int, int, int]]) -> Any:
    """``kernel`` autotuned over (BLOCK_M, BLOCK_N, warps, stages), keyed on power-of-two size buckets."""
    configs = [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in shapes
    ]
    key = ["Q_BUCKET", "K_BUCKET", "DK", "DV", "CAUSAL", "HAS_MASK", "HEADWISE", "PRECISION"]
    return triton.autotune(configs=configs, key=key)(kernel)


if _INTERPRET:
    _fwd: Any = fwd_kernel
    _dkdv: Any = bwd_dkdv_kernel
    _dq: Any = bwd_dq_kernel
else:
    _fwd = _autotuned(
        fwd_kernel,
        [
            *[(128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3), (64, 32, 4, 4)],
            *[(64, 64, 4, 2), (32, 32, 4, 2), (16, 64, 4, 2)],
        ],
    )
    # (BLOCK_M, BLOCK_N, warps, stages) of dK/dV; dQ swaps the blocks. Register and shared-memory
    # use of each was checked with ptxas for sm_90 at D = 128 (bf16 and fp32).
    _bwd_shapes = [
        (32, 128, 8, 2),
        (32, 128, 8, 3),
        (64, 64, 8, 3),
        (64, 128, 8, 2),
        (32, 64, 4, 3),
        (32, 32, 4, 2),
    ]
    _dkdv = _autotuned(bwd_dkdv_kernel, _bwd_shapes)
    _dq = _autotuned(bwd_dq_kernel, [(n, m, w, s) for m, n, w, s in _bwd_shapes])

_PRE_BLOCK_M = 16 if _INTERPRET else 64


def _launcher(tuned: Any, fixed: dict[str, int]) -> tuple[Any, dict[str, int]]:
    """The kernel to launch and the launch parameters the caller must add (none when autotuned)."""
    if _INTERPRET:
        return tuned, {"BLOCK_M": 32, "BLOCK_N": 32}
    if os.environ.get(AUTOTUNE_ENV, "1") == "0":
        return tuned.fn, fixed
    return tuned, {}


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    """The kernels index the feature dim with stride 1; other strides are passed through."""
    return t if t.stride(-1) == 1 or t.shape[-1] == 1 else t.contiguous()


def _strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def _common(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate: torch.Tensor) -> dict[str, Any]:
    """Compile-time parameters shared by every kernel of one call."""
    return {
        "HEADWISE": gate.shape[-1] == 1,
        # fp32: three TF32 tensor-core passes (hi·hi + hi·lo + lo·hi), close to IEEE fp32 accuracy
        # at tensor-core speed; plain "ieee" falls back to FMA loops that spill heavily at D = 128.
        "PRECISION": "tf32x3" if q.dtype == torch.float32 else "tf32",
        "BLOCK_DK": max(16, triton.next_power_of_2(q.shape[-1])),
        "BLOCK_DV": max(16, triton.next_power_of_2(v.shape[-1])),
        "DK": q.shape[-1],
        "DV": v.shape[-1],
    }


class _FlashGatedAttention(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        gate: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
        scale: float,
    ) -> torch.Tensor:
        B, Tq, H = q.shape[:3]
        Tk, H_kv, DV = k.shape[1], k.shape[2], v.shape[3]
        o = torch.empty(B, Tq, H, DV, dtype=q.dtype, device=q.device)
        lse = torch.empty(B * H, Tq, dtype=torch.float32, device=q.device)  # base-2 log-sum-exp

        def grid(meta: dict[str, int]) -> tuple[int, int]:
            return triton.cdiv(Tq, meta["BLOCK_M"]), B * H

        kernel, launch = _launcher(_fwd, _FIXED_FWD)
        kernel[grid](
            q, k, v, gate, q if mask is None else mask, o, lse,
            *_strides(q), *_strides(k), *_strides(v), *_strides(gate),
            0 if mask is None else mask.stride(0), *_strides(o),
            H, H // H_kv, Tq, Tk, scale * math.log2(math.e),
            triton.next_power_of_2(Tq), triton.next_power_of_2(Tk),
            CAUSAL=causal, HAS_MASK=mask is not None, **_common(q, k, v, gate), **launch,
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, gate, mask, o, lse)
        ctx.causal, ctx.scale = causal, scale
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, gate, mask, o, lse = ctx.saved_tensors
        do = _unit_last(do)
        B, Tq, H = q.shape[:3]
        Tk, H_kv, DV = k.shape[1], k.shape[2], v.shape[3]
        common = _common(q, k, v, gate)
        delta = torch.empty_like(lse)
        dgate = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
        bwd_preprocess_kernel[(triton.cdiv(Tq, _PRE_BLOCK_M), B * H)](
            o, do, gate, delta, dgate,
            *_strides(o), *_strides(do), *_strides(gate), *_strides(dgate),
            H, Tq, DV,
            HEADWISE=common["HEADWISE"], BLOCK_DV=common["BLOCK_DV"], BLOCK_M=_PRE_BLOCK_M,
        )  # fmt: skip
        dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
        dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
        mask_arg, mask_stride = (q, 0) if mask is None else (mask, mask.stride(0))
        qk_scale = ctx.scale * math.log2(math.e)
        buckets = (triton.next_power_of_2(Tq), triton.next_power_of_2(Tk))
        flags = {"CAUSAL": ctx.causal, "HAS_MASK": mask is not None, **common}

        def grid_kv(meta: dict[str, int]) -> tuple[int, int]:
            return triton.cdiv(Tk, meta["BLOCK_N"]), B * H_kv

        kernel, launch = _launcher(_dkdv, _FIXED_BWD)
        kernel[grid_kv](
            q, k, v, gate, mask_arg, do, lse, delta, dk, dv,
            *_strides(q), *_strides(k), *_strides(v), *_strides(gate), mask_stride,
            *_strides(do), *_strides(dk), *_strides(dv),
            H, H_kv, H // H_kv, Tq, Tk, qk_scale, ctx.scale, *buckets, **flags, **launch,
        )  # fmt: skip

        def grid_q(meta: dict[str, int]) -> tuple[int, int]:
            return triton.cdiv(Tq, meta["BLOCK_M"]), B * H

        kernel, launch = _launcher(_dq, _FIXED_BWD)
        kernel[grid_q](
            q, k, v, gate, mask_arg, do, lse, delta, dq,
            *_strides(q), *_strides(k), *_strides(v), *_strides(gate), mask_stride,
            *_strides(do), *_strides(dq),
            H, H // H_kv, Tq, Tk, qk_scale, ctx.scale, *buckets, **flags, **launch,
        )  # fmt: skip
        return dq, dk, dv, dgate, None, None, None


def flash_gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused Triton gated attention; arguments as :func:`reasonkit.kernels.gated_attention`."""
    if max(q.shape[-1], v.shape[-1]) > 256:
        raise KernelError(
            f"gated_attention: the Triton kernel supports head dims up to 256, got D={q.shape[-1]}, "
            f"Dv={v.shape[-1]}; pass impl='torch' (or set REASONKIT_KERNELS=torch)"
        )
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    # int8 rather than bool: one byte per key either way, and Triton's i1 pointers are awkward.
    mask = None if attention_mask is None else attention_mask.to(torch.int8)
    q, k, v, gate = (_unit_last(t) for t in (q, k, v, gate))
    return _FlashGatedAttention.apply(q, k, v, gate, mask, causal, float(scale))
