"""GLA Triton kernels compiled and run on a real GPU, at realistic sizes, forward and backward.

Run on a CUDA machine with ``python -m pytest tests/kernels/test_gla_gpu.py -m gpu -q``. The
reference is the float64 torch chunk path on the same device (itself checked against the naive
loop to 1e-12 in ``test_gla.py``); small cases also use the naive loop directly. Tolerances are
relative RMS errors: float32 as in the interpreter tests; bfloat16 as fla's own tests (≈5e-3).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from reasonkit.kernels import chunk_gla, fused_recurrent_gla, gla_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
NAMES = ("o", "final_state", "dq", "dk", "dv", "dg", "dh0")


@pytest.fixture(autouse=True)
def fixed_launch_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """One launch config per kernel (no tuning runs at every new shape); one test turns tuning on."""
    monkeypatch.setenv("REASONKIT_TRITON_AUTOTUNE", "0")


FP32_TOL = {"o": 2e-5, "final_state": 2e-5, "dq": 2e-5, "dk": 2e-5, "dv": 2e-5, "dg": 1e-4, "dh0": 2e-5}
BF16_TOL = {"o": 6e-3, "final_state": 6e-3, "dq": 6e-3, "dk": 6e-3, "dv": 6e-3, "dg": 1.5e-2, "dh0": 6e-3}


def make_inputs(
    B: int, T: int, H: int, K: int, V: int, normaliser: float, dtype: torch.dtype
) -> list[torch.Tensor]:
    """q, k, v, g (rounded to ``dtype``) and h0, as float64 copies on the GPU."""
    gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device="cuda")

    q, k, v = randn(B, T, H, K), randn(B, T, H, K), randn(B, T, H, V)
    g = F.logsigmoid(randn(B, T, H, K)) / normaliser
    return [x.to(dtype).double() for x in (q, k, v, g)] + [randn(B, H, K, V).double()]


def run_with_grads(
    fn: Callable[..., Any], inputs: list[torch.Tensor], dtype: torch.dtype, **kw: Any
) -> list[torch.Tensor]:
    xs = [x.detach().to(dtype if i < 4 else torch.float32).requires_grad_() for i, x in enumerate(inputs)]
    gen = torch.Generator(device="cuda").manual_seed(1)
    o, ht = fn(*xs[:4], initial_state=xs[4], output_final_state=True, **kw)
    w_o = torch.randn(o.shape, generator=gen, device="cuda").to(o.dtype)
    w_h = torch.randn(ht.shape, generator=gen, device="cuda")
    ((o * w_o).float().sum() + (ht * w_h).sum()).backward()
    return [t.detach().double() for t in (o, ht, *(x.grad for x in xs))]


def reference(inputs: list[torch.Tensor], **kw: Any) -> list[torch.Tensor]:
    xs = [x.clone() for x in inputs]
    return run_with_grads(lambda *a, **k: chunk_gla(*a, impl="torch", **k), xs, torch.float64, **kw)


def assert_close_all(out: list[torch.Tensor], ref: list[torch.Tensor], tol: dict[str, float]) -> None:
    for name, x, r in zip(NAMES, out, ref):
        assert torch.isfinite(x).all(), f"{name} has non-finite values"
        err = ((x - r).pow(2).mean().sqrt() / r.pow(2).mean().sqrt()).item()
        assert err < tol[name], f"{name}: relative RMS error {err:.2e} ≥ {tol[name]:.0e}"


def triton_op(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **kw: fn(*a, impl="triton", **kw)


@pytest.mark.parametrize("dims", [(2, 1000, 4, 128, 128), (4, 512, 2, 64, 64), (1, 300, 3, 60, 100)], ids=str)
@pytest.mark.parametrize("normaliser", [0.1, 1.0, 16.0])
def test_chunk_float32_matches_reference(dims: tuple[int, ...], normaliser: float) -> None:
    inputs = make_inputs(*dims, normaliser=normaliser, dtype=torch.float32)
    out = run_with_grads(triton_op(chunk_gla), inputs, torch.float32)
    assert_close_all(out, reference(inputs), FP32_TOL)


@pytest.mark.parametrize("dims", [(2, 1000, 4, 128, 128), (8, 1024, 8, 64, 64)], ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_chunk_half_precision_matches_reference(dims: tuple[int, ...], dtype: torch.dtype) -> None:
    inputs = make_inputs(*dims, normaliser=16.0, dtype=dtype)
    out = run_with_grads(triton_op(chunk_gla), inputs, dtype)
    assert_close_all(out, reference(inputs), BF16_TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fused_recurrent_matches_reference(dtype: torch.dtype) -> None:
    inputs = make_inputs(2, 256, 4, 128, 128, normaliser=1.0, dtype=dtype)
    out = run_with_grads(triton_op(fused_recurrent_gla), inputs, dtype)
    assert_close_all(out, reference(inputs), FP32_TOL if dtype == torch.float32 else BF16_TOL)


def test_small_case_against_the_naive_loop() -> None:
    inputs = make_inputs(2, 63, 2, 20, 12, normaliser=0.1, dtype=torch.float32)
    naive = run_with_grads(lambda *a, **k: chunk_gla(*a, impl="naive", **k), inputs, torch.float64)
    for fn in (chunk_gla, fused_recurrent_gla):
        assert_close_all(run_with_grads(triton_op(fn), inputs, torch.float32), naive, FP32_TOL)


@pytest.mark.parametrize("fn", [chunk_gla, fused_recurrent_gla], ids=["chunk", "fused_recurrent"])
def test_varlen_with_an_empty_sequence(fn: Callable[..., Any]) -> None:
    lengths = [100, 0, 1000, 37]
    inputs = make_inputs(1, sum(lengths), 4, 64, 64, normaliser=16.0, dtype=torch.float32)
    inputs[4] = make_inputs(len(lengths), 1, 4, 64, 64, normaliser=16.0, dtype=torch.float32)[4]
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], device="cuda")
    out = run_with_grads(triton_op(fn), inputs, torch.float32, cu_seqlens=bounds)
    assert_close_all(out, reference(inputs, cu_seqlens=bounds), FP32_TOL)


def test_decode_steps_equal_the_full_sequence() -> None:
    q, k, v, g, h0 = (
        x.float() for x in make_inputs(4, 64, 8, 128, 128, normaliser=16.0, dtype=torch.bfloat16)
    )
    o_full, h_full = chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True, impl="triton")
    state: torch.Tensor | None = h0
    outs = []
    for t in range(q.shape[1]):
        o_t, state = gla_step(q[:, t], k[:, t], v[:, t], g[:, t], state, impl="triton")
        outs.append(o_t)
    torch.testing.assert_close(torch.stack(outs, 1), o_full, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(state, h_full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_extreme_decay_stays_finite(dtype: torch.dtype) -> None:
    q, k, v, g, _ = make_inputs(2, 2048, 4, 64, 64, normaliser=0.01, dtype=dtype)
    xs = [x.to(dtype).requires_grad_() for x in (q, k, v, g)]
    for fn in (chunk_gla, fused_recurrent_gla):
        o, ht = fn(*xs, output_final_state=True, impl="triton")
        (o.float().sum() + ht.sum()).backward()
        for name, t in zip(NAMES, [o, ht, *(x.grad for x in xs)]):
            assert t is not None and torch.isfinite(t).all(), f"{fn.__name__} {dtype}: {name} not finite"
        for x in xs:
            x.grad = None


def test_autotuned_launches_match_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONKIT_TRITON_AUTOTUNE", "1")
    inputs = make_inputs(4, 1024, 8, 128, 128, normaliser=16.0, dtype=torch.bfloat16)
    out = run_with_grads(triton_op(chunk_gla), inputs, torch.bfloat16)
    assert_close_all(out, reference(inputs), BF16_TOL)


def test_agrees_with_fla_when_installed() -> None:
    fla_gla = pytest.importorskip("fla.ops.gla")
    extra = {"head_first": False} if "head_first" in inspect.signature(fla_gla.chunk_gla).parameters else {}
    inputs = make_inputs(2, 1000, 4, 128, 128, normaliser=16.0, dtype=torch.bfloat16)
    ours = run_with_grads(triton_op(chunk_gla), inputs, torch.bfloat16)
    theirs = run_with_grads(fla_gla.chunk_gla, inputs, torch.bfloat16, **extra)
    assert_close_all(ours, theirs, {name: 2 * tol for name, tol in BF16_TOL.items()})
