"""Benchmark cases for gated attention, run by ``python -m reasonkit.kernels.bench``.

CPU: the SDPA composition against the naive loop. CUDA: the fused Triton kernel against SDPA
followed by a separate sigmoid-gate multiply (the target is ≤ 0.85× its time), forward and
forward+backward in bf16 at flash-linear-attention's published sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from reasonkit.kernels.gated_attention.op import gated_attention

if TYPE_CHECKING:
    from reasonkit.kernels.bench import BenchCase


def _inputs(
    B: int, T: int, H: int, D: int, device: str, dtype: torch.dtype, grad: bool
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (B, T, H, D)
    return tuple(
        torch.randn(shape, generator=gen, device=device, dtype=dtype).requires_grad_(grad) for _ in range(4)
    )


def _variant(impl: str, inputs: tuple[torch.Tensor, ...], backward: bool) -> Callable[[], object]:
    q, k, v, g = inputs
    if not backward:
        return lambda: gated_attention(q, k, v, g, causal=True, impl=impl)
    do = torch.randn_like(q)

    def run() -> object:
        o = gated_attention(q, k, v, g, causal=True, impl=impl)
        return torch.autograd.grad(o, (q, k, v, g), do)

    return run


def bench_cases(device: str, quick: bool = False) -> list[BenchCase]:
    """Cases for ``device`` ("cpu" or "cuda"), only the first size of each when ``quick``."""
    from reasonkit.kernels.bench import BenchCase

    cases = []
    if device == "cpu":
        sizes, dtype, impls, baseline = (
            [(1, 128, 4, 32), (2, 256, 4, 64)],
            torch.float32,
            ("torch", "naive"),
            "naive",
        )
    else:
        sizes, dtype = [(8, 1024, 8, 64), (4, 4096, 16, 128)], torch.bfloat16
        impls, baseline = ("triton", "torch"), "torch"
    names = {"triton": "fused triton", "torch": "sdpa + gate", "naive": "naive loop"}
    for B, T, H, D in sizes[:1] if quick else sizes:
        for backward in (False, True):
            inputs = _inputs(B, T, H, D, device, dtype, grad=backward)
            cases.append(
                BenchCase(
                    group="gated attention",
                    name="fwd+bwd" if backward else "fwd",
                    sizes=f"B={B} T={T} H={H} D={D} {str(dtype).removeprefix('torch.')} causal",
                    variants={names[i]: _variant(i, inputs, backward) for i in impls},
                    baseline=names[baseline],
                )
            )
    return cases
