"""Benchmark cases for the head-wise LSTM / sLSTM, run by ``python -m reasonkit.kernels.bench``.

CPU: the torch loop against the naive loop. CUDA: the fused Triton sLSTM against the torch loop
(target ≥ 10× faster) and the Triton LSTM against cuDNN's torch.nn.LSTM. With one head the two
LSTMs compute the same function (the input projection is included in ours); with several heads
cuDNN runs a dense recurrent matrix over the same hidden size, i.e. N× the recurrent FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from reasonkit.kernels.rnn.op import lstm, slstm

if TYPE_CHECKING:
    from reasonkit.kernels.bench import BenchCase

_OPS = {"lstm": lstm, "slstm": slstm}


def _params(
    B: int, T: int, N: int, D: int, device: str, dtype: torch.dtype, grad: bool
) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    shapes = [(B, T, 4, N, D), (4, N, D, D), (4, N, D)]
    scales = [1.0, D**-0.5, 0.1]
    return [
        (torch.randn(s, generator=gen, device=device, dtype=torch.float32) * c).to(dtype).requires_grad_(grad)
        for s, c in zip(shapes, scales)
    ]


def _ours(kind: str, impl: str, params: list[torch.Tensor], backward: bool) -> Callable[[], object]:
    op = _OPS[kind]
    if not backward:
        return lambda: op(*params, impl=impl)
    wx = params[0]
    dh = torch.randn(wx.shape[0], wx.shape[1], wx.shape[3], wx.shape[4], device=wx.device, dtype=wx.dtype)

    def run() -> object:
        h, _ = op(*params, impl=impl)
        return torch.autograd.grad(h, params, dh)

    return run


def _lstm_vs_cudnn(B: int, T: int, N: int, D: int, backward: bool) -> dict[str, Callable[[], object]]:
    dtype = torch.float16  # cuDNN's RNNs take fp16/fp32; bf16 support varies by version
    hidden = N * D
    x = torch.randn(B, T, hidden, device="cuda", dtype=dtype, requires_grad=backward)
    cudnn = torch.nn.LSTM(hidden, hidden, batch_first=True).to(device="cuda", dtype=dtype)
    w_ih = (torch.randn(4 * hidden, hidden, device="cuda", dtype=dtype) * hidden**-0.5).requires_grad_(
        backward
    )
    r, b = _params(B, 1, N, D, "cuda", dtype, backward)[1:]

    def ours() -> object:
        wx = F.linear(x, w_ih).view(B, T, 4, N, D)  # (B, T, 4, N, D)
        h, _ = lstm(wx, r, b, impl="triton")
        return torch.autograd.grad(h.sum(), (x, w_ih, r, b)) if backward else h

    def reference() -> object:
        h, _ = cudnn(x)
        return torch.autograd.grad(h.sum(), (x, *cudnn.parameters())) if backward else h

    return {"fused triton": ours, "cudnn nn.LSTM": reference}


def bench_cases(device: str, quick: bool = False) -> list[BenchCase]:
    """Cases for ``device`` ("cpu" or "cuda"), only the first size of each when ``quick``."""
    from reasonkit.kernels.bench import BenchCase

    cases = []
    names = {"triton": "fused triton", "torch": "torch loop", "naive": "naive loop"}
    if device == "cpu":
        runs = [("slstm", (4, 64, 2, 32)), ("lstm", (4, 64, 2, 32)), ("slstm", (8, 256, 4, 16))]
        impls, baseline, dtype = ("torch", "naive"), "naive", torch.float32
    else:
        runs = [("slstm", (16, 1024, 12, 64)), ("slstm", (16, 1024, 4, 32))]
        impls, baseline, dtype = ("triton", "torch"), "torch", torch.bfloat16
    for kind, (B, T, N, D) in runs[:2] if quick else runs:
        for backward in (False, True):
            params = _params(B, T, N, D, device, dtype, backward)
            cases.append(
                BenchCase(
                    group=kind,
                    name="fwd+bwd" if backward else "fwd",
                    sizes=f"B={B} T={T} N={N} D={D} {str(dtype).removeprefix('torch.')}",
                    variants={names[i]: _ours(kind, i, params, backward) for i in impls},
                    baseline=names[baseline],
                )
            )
    if device != "cpu":
        for B, T, N, D in [(16, 1024, 1, 64), (16, 1024, 8, 64)][: 1 if quick else 2]:
            for backward in (False, True):
                same = "same function" if N == 1 else f"cuDNN dense {N * D}x{N * D}"
                cases.append(
                    BenchCase(
                        group="lstm vs cudnn",
                        name="fwd+bwd" if backward else "fwd",
                        sizes=f"B={B} T={T} N={N} D={D} float16, {same}",
                        variants=_lstm_vs_cudnn(B, T, N, D, backward),
                        baseline="cudnn nn.LSTM",
                    )
                )
    return cases
