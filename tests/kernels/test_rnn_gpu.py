"""Head-wise LSTM / sLSTM on a real GPU: the compiled Triton kernels against the float64 torch loop.

Run on a CUDA machine with ``pytest -m gpu tests/kernels/test_rnn_gpu.py``. These sizes exercise
what the CPU interpreter cannot: register pressure of the on-chip recurrent weights (D up to 128),
tensor-core dots in bf16/fp16, several batch blocks, long sequences. The torch loop itself is
checked against the naive loop in tests/kernels/test_rnn.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from reasonkit.kernels import lstm, lstm_step, slstm, slstm_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
OPS = {"lstm": lstm, "slstm": slstm}


def rel_rms(out: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    return ((out.double() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def params(kind: str, B: int, T: int, N: int, D: int) -> list[torch.Tensor]:
    gen = torch.Generator("cuda").manual_seed(0)
    wx = torch.randn(B, T, 4, N, D, generator=gen, device="cuda", dtype=torch.float64)
    r = torch.randn(4, N, D, D, generator=gen, device="cuda", dtype=torch.float64) / math.sqrt(D)
    b = torch.randn(4, N, D, generator=gen, device="cuda", dtype=torch.float64) * 0.5
    s = torch.randn(4 if kind == "slstm" else 2, B, N, D, generator=gen, device="cuda", dtype=torch.float64)
    if kind == "slstm":
        s[2] = s[2].abs() + 0.5
    return [wx, r, b, s]


def run(
    kind: str, inputs: list[torch.Tensor], impl: str, dtype: torch.dtype, mask: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    cast = [t.detach().to(dtype).requires_grad_() for t in inputs]
    h, final = OPS[kind](*cast, mask=mask, impl=impl)
    gen = torch.Generator("cuda").manual_seed(1)
    dh = torch.randn(h.shape, generator=gen, device="cuda").to(h.dtype)
    dfinal = torch.randn(final.shape, generator=gen, device="cuda").to(final.dtype)
    grads = torch.autograd.grad((h * dh).sum() + (final * dfinal).sum(), cast)
    return h, final, *grads


# (B, T, N, D, padded)
SIZES = {
    "d64-long": (16, 512, 4, 64, False),
    "d48-ragged-batch-padded": (37, 200, 3, 48, True),
    "d128-spilling": (8, 64, 2, 128, False),
    "d16-many-heads": (5, 300, 12, 16, True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_triton_matches_float64_torch_loop(kind: str, name: str, dtype: torch.dtype) -> None:
    B, T, N, D, padded = SIZES[name]
    inputs = params(kind, B, T, N, D)
    mask = None
    if padded:
        mask = torch.ones(B, T, dtype=torch.bool, device="cuda")
        mask[0, : T // 3] = False
    ref = run(kind, inputs, "torch", torch.float64, mask)
    out = run(kind, inputs, "triton", dtype, mask)
    # fp32 runs its dots in IEEE precision; bf16/fp16 round h and r for the recurrent matmul.
    bound = 1e-4 if dtype == torch.float32 else 3e-2
    for label, o, rf in zip(("h", "final", "dwx", "dr", "db", "dstates"), out, ref):
        assert torch.isfinite(o).all(), f"{label} not finite"
        assert rel_rms(o, rf) < bound, f"{kind} {name} {dtype} {label}: {rel_rms(o, rf):.2e}"


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_triton_step_loop_equals_full_sequence(kind: str) -> None:
    wx, r, b, s = (t.float() for t in params(kind, 8, 20, 4, 64))
    h, final = OPS[kind](wx, r, b, s, impl="triton")
    step = {"lstm": lstm_step, "slstm": slstm_step}[kind]
    outs = []
    for t in range(20):
        ht, s = step(wx[:, t], r, b, s, impl="triton")
        outs.append(ht)
    assert rel_rms(torch.stack(outs, dim=1), h) < 1e-6 and rel_rms(s, final) < 1e-6
