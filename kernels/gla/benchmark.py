"""Benchmark cases for gated linear attention, run by ``python -m reasonkit.kernels.bench``.

CPU (float32, B=2, H=4, K=V=64, fla's gate normaliser 16): the torch chunkwise path against the
naive loop (the baseline) and the torch recurrence, forward and forward+backward, T ∈ {256, 1024,
2048, 4096}; plus T=2048 with steep gates (normaliser 0.1), where the chunk path takes its slow,
elementwise form. ``quick`` keeps T ∈ {256, 2048}.

CUDA (bfloat16, fla's published sizes B=4 T=4096 H=16 D=128 and B=8 T=1024 H=8 D=64): our Triton
``chunk_gla`` against fla's ``chunk_gla`` (the baseline, when ``fla`` imports) and our torch path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from reasonkit.kernels.gla.api import chunk_gla, fused_recurrent_gla

if TYPE_CHECKING:
    from reasonkit.kernels.bench import BenchCase

Op = Callable[..., Any]


def _inputs(
    B: int, T: int, H: int, K: int, V: int, device: str, dtype: torch.dtype, normaliser: float
) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32)

    q, k, v = randn(B, T, H, K), randn(B, T, H, K), randn(B, T, H, V)
    g = F.logsigmoid(randn(B, T, H, K)) / normaliser
    return [x.to(dtype).requires_grad_() for x in (q, k, v, g)]


def _variant(fn: Op, inputs: list[torch.Tensor], backward: bool) -> Callable[[], object]:
    if not backward:

        def forward() -> object:
            with torch.no_grad():
                return fn(*inputs)

        return forward
    do = torch.randn_like(inputs[2])

    def forward_backward() -> object:
        o = fn(*inputs)[0]
        return torch.autograd.grad(o, inputs, do)

    return forward_backward


def _fla_chunk_gla() -> Op | None:
    """fla's chunk_gla called with fla's (B, T, H, D) layout, or None when fla is not installed."""
    try:
        from fla.ops.gla import chunk_gla as fla_chunk_gla
    except ImportError:
        return None
    if "head_first" in inspect.signature(fla_chunk_gla).parameters:  # older fla defaulted to (B, H, T, D)
        return lambda q, k, v, g: fla_chunk_gla(q, k, v, g, head_first=False)
    return lambda q, k, v, g: fla_chunk_gla(q, k, v, g)


def _ours(fn: Op, impl: str) -> Op:
    return lambda q, k, v, g: fn(q, k, v, g, impl=impl)


def _cpu_cases(quick: bool) -> list[BenchCase]:
    from reasonkit.kernels.bench import BenchCase

    B, H, D = 2, 4, 64
    variants = {
        "torch chunk": _ours(chunk_gla, "torch"),
        "torch fused recurrent": _ours(fused_recurrent_gla, "torch"),
        "naive loop": _ours(chunk_gla, "naive"),
    }
    cases = []
    for normaliser, lengths in ((16.0, (256, 2048) if quick else (256, 1024, 2048, 4096)), (0.1, (2048,))):
        group = "gla" if normaliser == 16.0 else "gla steep gates"
        for T in lengths:
            inputs = _inputs(B, T, H, D, D, "cpu", torch.float32, normaliser)
            for backward in (False, True):
                cases.append(
                    BenchCase(
                        group=group,
                        name="fwd+bwd" if backward else "fwd",
                        sizes=f"B={B} T={T} H={H} K=V={D} float32 g/{normaliser:g}",
                        variants={name: _variant(fn, inputs, backward) for name, fn in variants.items()},
                        baseline="naive loop",
                    )
                )
    return cases


def _cuda_cases() -> list[BenchCase]:
    from reasonkit.kernels.bench import BenchCase

    fla = _fla_chunk_gla()
    variants: dict[str, Op] = {
        "triton chunk": _ours(chunk_gla, "triton"),
        "torch chunk": _ours(chunk_gla, "torch"),
    }
    note = ""
    if fla is not None:
        variants["fla chunk_gla"] = fla
    else:
        note = (
            "fla (flash-linear-attention) not importable: its variant is skipped, baseline is our torch path"
        )
    cases = []
    for B, T, H, D in ((4, 4096, 16, 128), (8, 1024, 8, 64)):
        inputs = _inputs(B, T, H, D, D, "cuda", torch.bfloat16, 16.0)
        for backward in (False, True):
            cases.append(
                BenchCase(
                    group="gla",
                    name="fwd+bwd" if backward else "fwd",
                    sizes=f"B={B} T={T} H={H} K=V={D} bfloat16 g/16",
                    variants={name: _variant(fn, inputs, backward) for name, fn in variants.items()},
                    baseline="fla chunk_gla" if fla is not None else "torch chunk",
                    note=note,
                )
            )
    return cases


def bench_cases(device: str, quick: bool = False) -> list[BenchCase]:
    """GLA cases for ``device`` ("cpu" or "cuda")."""
    return _cpu_cases(quick) if device == "cpu" else _cuda_cases()
