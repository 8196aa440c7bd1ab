"""Gated linear attention: every path against the float64 loop that defines the op.

The naive loop is itself checked against the parallel (attention) form and a hand-computed case.
The Triton kernels run through ``TRITON_INTERPRET=1`` in a child pytest process (the interpreter is
chosen when a kernel module is imported, so it must not leak into this process), with K / V tiles
narrowed to 16 so small dims still exercise the loops over blocks. Kernels compiled for a real
GPU (sm_90) are checked in ``test_triton_kernels_compile_for_sm90``; GPU runs are in
``test_gla_gpu.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from reasonkit.kernels import KernelError, chunk_gla, fused_recurrent_gla, gla_step
from reasonkit.kernels.gla.chunk import chunk_size_for
from reasonkit.kernels.gla.naive import naive_recurrent_gla

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
interp_only = pytest.mark.skipif(
    not INTERPRETING,
    reason="runs in the TRITON_INTERPRET=1 child started by test_triton_kernels_under_interpreter",
)
not_in_interp = pytest.mark.skipif(
    INTERPRETING, reason="host-side test; the interpreter child runs only Triton"
)

Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
NAMES = ("o", "final_state", "dq", "dk", "dv", "dg", "dh0")


# Per 16-step block: steep blocks (0.1) inside otherwise gentle chunks, a medium block (1.0) and
# gentle chunks (16), so the torch path's fast and slow forms of the intra-chunk matrix meet.
MIXED_NORMALISERS = {1: 0.1, 2: 1.0, 4: 0.1}


def make_inputs(B: int, T: int, H: int, K: int, V: int, normaliser: float | str, seed: int = 0) -> Inputs:
    """Random float64 q, k, v, fla-style gates g = logsigmoid(x) / normaliser, and an initial state.

    ``normaliser="mixed"`` varies it per 16-step block (MIXED_NORMALISERS, 16 elsewhere).
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    if normaliser == "mixed":
        norm = torch.tensor([MIXED_NORMALISERS.get(t // 16, 16.0) for t in range(T)], dtype=torch.float64)
        norm = norm[None, :, None, None]
    else:
        norm = torch.tensor(float(normaliser), dtype=torch.float64)
    g = F.logsigmoid(randn(B, T, H, K)) / norm
    return randn(B, T, H, K), randn(B, T, H, K), randn(B, T, H, V), g, randn(B, H, K, V)


def run_with_grads(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]], inputs: Inputs, dtype: torch.dtype, **kw
):  # type: ignore[no-untyped-def]
    """(o, final state, dq, dk, dv, dg, dh0) in float64, for a loss with random weights on o and the state."""
    xs = [x.detach().to(dtype).requires_grad_() for x in inputs]
    gen = torch.Generator().manual_seed(1)
    o, ht = fn(*xs[:4], initial_state=xs[4], output_final_state=True, **kw)
    assert ht is not None
    w_o = torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype)
    w_h = torch.randn(ht.shape, generator=gen, dtype=torch.float64).to(ht.dtype)
    ((o * w_o).sum() + (ht * w_h).sum()).backward()
    return [t.detach().double() for t in (o, ht, *(x.grad for x in xs))]  # type: ignore[union-attr]


def rel_rms(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()


def assert_close_all(out: list[torch.Tensor], ref: list[torch.Tensor], tol: float | dict[str, float]) -> None:
    for name, x, r in zip(NAMES, out, ref):
        limit = tol if isinstance(tol, float) else tol[name]
        assert torch.isfinite(x).all(), f"{name} has non-finite values"
        err = rel_rms(x, r)
        assert err < limit, f"{name}: relative RMS error {err:.2e} ≥ {limit:.0e}"


def op(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]], impl: str
) -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
    return lambda *a, **kw: fn(*a, impl=impl, **kw)


FAST_TORCH = {"chunk": op(chunk_gla, "torch"), "fused_recurrent": op(fused_recurrent_gla, "torch")}
NAIVE = op(chunk_gla, "naive")


# --- the reference itself ----------------------------------------------------------------------


@not_in_interp
def test_naive_matches_hand_computed_two_steps() -> None:
    q = torch.tensor([0.5, -1.0], dtype=torch.float64).view(1, 2, 1, 1)
    k = torch.tensor([2.0, 3.0], dtype=torch.float64).view(1, 2, 1, 1)
    v = torch.tensor([1.5, -0.5], dtype=torch.float64).view(1, 2, 1, 1)
    g = torch.tensor([-0.3, -0.7], dtype=torch.float64).view(1, 2, 1, 1)
    h0 = torch.tensor([4.0], dtype=torch.float64).view(1, 1, 1, 1)
    o, ht = naive_recurrent_gla(q, k, v, g, scale=0.25, initial_state=h0, output_final_state=True)
    s1 = math.exp(-0.3) * 4.0 + 2.0 * 1.5
    s2 = math.exp(-0.7) * s1 + 3.0 * -0.5
    assert o.flatten().tolist() == pytest.approx([0.25 * 0.5 * s1, 0.25 * -1.0 * s2], rel=1e-14)
    assert ht is not None and ht.item() == pytest.approx(s2, rel=1e-14)


@not_in_interp
def test_naive_equals_parallel_attention_form() -> None:
    q, k, v, g, h0 = make_inputs(2, 19, 2, 5, 3, normaliser=1.0)
    cum = g.cumsum(1)  # (B, T, H, K)
    decay = cum[:, :, None] - cum[:, None, :]  # (B, t, s, H, K)
    causal = torch.ones(19, 19, dtype=torch.bool).tril()[None, :, :, None, None]
    weights = torch.einsum("bthk,bshk,btshk->bths", q, k, decay.exp() * causal)
    scale = 5**-0.5
    expected = scale * torch.einsum("bths,bshv->bthv", weights, v)
    expected += scale * torch.einsum("bthk,bhkv->bthv", q * cum.exp(), h0)
    o, _ = naive_recurrent_gla(q, k, v, g, initial_state=h0)
    torch.testing.assert_close(o, expected, rtol=1e-12, atol=1e-12)


# --- torch paths against the reference ---------------------------------------------------------


@not_in_interp
@pytest.mark.parametrize("path", sorted(FAST_TORCH))
@pytest.mark.parametrize("normaliser", [0.1, 1.0, 10.0, "mixed"])
def test_torch_paths_match_reference_in_float64(path: str, normaliser: float | str) -> None:
    T = 150 if normaliser == "mixed" else 63  # odd T; "mixed" needs a gentle third chunk
    inputs = make_inputs(2, T, 3, 20, 12, normaliser)  # non-power-of-two dims
    ref = run_with_grads(NAIVE, inputs, torch.float64)
    out = run_with_grads(FAST_TORCH[path], inputs, torch.float64)
    assert_close_all(out, ref, 1e-12)


@not_in_interp
@pytest.mark.parametrize("path", sorted(FAST_TORCH))
@pytest.mark.parametrize("normaliser", [0.1, 1.0, 10.0, "mixed"])
def test_torch_paths_float32_relative_rms_below_1e5(path: str, normaliser: float | str) -> None:
    inputs = make_inputs(2, 150, 2, 32, 24, normaliser, seed=3)  # three chunks, the last one padded
    ref = run_with_grads(NAIVE, inputs, torch.float64)
    out = run_with_grads(FAST_TORCH[path], inputs, torch.float32)
    assert_close_all(out, ref, 1e-5)


@not_in_interp
@pytest.mark.parametrize("path", sorted(FAST_TORCH))
def test_torch_paths_gradcheck(path: str) -> None:
    T = 66 if path == "chunk" else 12  # two chunks; the recurrence has no chunk boundary to cross
    q, k, v, g, h0 = (x.requires_grad_() for x in make_inputs(1, T, 1, 2, 2, normaliser=1.0))

    def f(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        o, ht = FAST_TORCH[path](*xs[:4], initial_state=xs[4], output_final_state=True)
        assert ht is not None
        return o, ht

    assert torch.autograd.gradcheck(f, (q, k, v, g, h0), eps=1e-6, atol=1e-7)


@not_in_interp
def test_chunk_path_is_finite_under_extreme_decay() -> None:
    # a cumulative decay of thousands of nats within one chunk: exp(b) factorisations overflow here
    q, k, v, g, _ = make_inputs(1, 256, 2, 16, 16, normaliser=0.01)
    assert g.sum(1).min() < -5000
    for dtype in (torch.float32, torch.bfloat16):
        xs = [x.to(dtype).requires_grad_() for x in (q, k, v, g)]
        o, ht = chunk_gla(*xs, output_final_state=True, impl="torch")
        assert ht is not None
        (o.float().sum() + ht.sum()).backward()
        for name, t in zip(NAMES, [o, ht, *(x.grad for x in xs)]):
            assert t is not None and torch.isfinite(t).all(), f"{dtype}: {name} is not finite"


# --- semantics shared by every path ------------------------------------------------------------

ALL_HOST_PATHS = {"naive": NAIVE, **FAST_TORCH}


@not_in_interp
@pytest.mark.parametrize("path", sorted(ALL_HOST_PATHS))
def test_carrying_the_final_state_equals_one_run(path: str) -> None:
    q, k, v, g, h0 = make_inputs(2, 70, 2, 8, 6, normaliser=1.0)
    fn = ALL_HOST_PATHS[path]
    o_all, h_all = fn(q, k, v, g, initial_state=h0, output_final_state=True)
    o1, h1 = fn(q[:, :33], k[:, :33], v[:, :33], g[:, :33], initial_state=h0, output_final_state=True)
    o2, h2 = fn(q[:, 33:], k[:, 33:], v[:, 33:], g[:, 33:], initial_state=h1, output_final_state=True)
    torch.testing.assert_close(torch.cat([o1, o2], 1), o_all, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h2, h_all, rtol=1e-12, atol=1e-12)


@not_in_interp
@pytest.mark.parametrize("path", sorted(ALL_HOST_PATHS))
def test_varlen_equals_per_sequence_runs_with_an_empty_sequence(path: str) -> None:
    check_varlen(ALL_HOST_PATHS[path], torch.float64, lengths=(5, 0, 70, 1), tol=1e-12)


def check_varlen(fn, dtype: torch.dtype, lengths: tuple[int, ...], tol: float) -> None:  # type: ignore[no-untyped-def]
    T = sum(lengths)
    q, k, v, g, _ = make_inputs(1, T, 1, 8, 6, normaliser=1.0)
    h0 = make_inputs(len(lengths), 1, 1, 8, 6, normaliser=1.0, seed=5)[4]
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    packed = run_with_grads(fn, (q, k, v, g, h0), dtype, cu_seqlens=bounds)
    for i, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        part = (q[:, lo:hi], k[:, lo:hi], v[:, lo:hi], g[:, lo:hi], h0[i : i + 1])
        if hi == lo:  # an empty sequence passes its initial state through, with gradient 1
            torch.testing.assert_close(packed[1][i], h0[i])
            continue
        alone = run_with_grads(NAIVE, part, torch.float64)
        # the loss weights differ between the two runs, so compare forward values only here ...
        torch.testing.assert_close(packed[0][:, lo:hi], alone[0], rtol=tol, atol=tol)
        torch.testing.assert_close(packed[1][i : i + 1], alone[1], rtol=tol, atol=tol)
    # ... and gradients against the reference on the same packed batch
    ref = run_with_grads(NAIVE, (q, k, v, g, h0), torch.float64, cu_seqlens=bounds)
    assert_close_all(packed, ref, tol)


@not_in_interp
@pytest.mark.parametrize("impl", ["naive", "torch"])
def test_decode_step_loop_equals_full_sequence(impl: str) -> None:
    q, k, v, g, h0 = make_inputs(2, 40, 3, 8, 5, normaliser=1.0)
    o_full, h_full = chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True, impl="torch")
    state: torch.Tensor | None = h0
    outs = []
    for t in range(q.shape[1]):
        o_t, state = gla_step(q[:, t], k[:, t], v[:, t], g[:, t], state, impl=impl)
        outs.append(o_t)
    torch.testing.assert_close(torch.stack(outs, 1), o_full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, h_full, rtol=1e-12, atol=1e-12)


@not_in_interp
def test_dtypes_follow_fla() -> None:
    q, k, v, g, _ = (x.to(torch.bfloat16) for x in make_inputs(1, 20, 2, 8, 4, normaliser=16.0))
    for fn in (chunk_gla, fused_recurrent_gla):
        o, ht = fn(q, k, v, g, output_final_state=True, impl="torch")
        assert o.dtype == torch.bfloat16 and ht is not None and ht.dtype == torch.float32
        assert fn(q, k, v, g, impl="torch")[1] is None
    o_step, state = gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], None)
    assert o_step.dtype == torch.bfloat16 and state.dtype == torch.float32


@not_in_interp
def test_environment_variable_selects_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    from reasonkit.kernels.gla import api

    calls = []
    monkeypatch.setattr(api, "naive_recurrent_gla", lambda *a: calls.append(a) or naive_recurrent_gla(*a))
    q, k, v, g, _ = make_inputs(1, 10, 1, 4, 4, normaliser=1.0)
    monkeypatch.setenv("REASONKIT_KERNELS", "naive")
    chunk_gla(q, k, v, g)
    assert len(calls) == 1
    monkeypatch.setenv("REASONKIT_KERNELS", "torch")
    chunk_gla(q, k, v, g)
    assert len(calls) == 1
    monkeypatch.setenv("REASONKIT_KERNELS", "cuda")
    with pytest.raises(KernelError, match="REASONKIT_KERNELS"):
        chunk_gla(q, k, v, g)


@not_in_interp
def test_chunk_size_rule_follows_fla() -> None:
    assert [chunk_size_for(t) for t in (1, 16, 17, 33, 63, 64, 65, 4096)] == [16, 16, 32, 64, 64, 64, 64, 64]


@not_in_interp
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: {**a, "q": a["q"][0]}, "q must be 4-D"),
        (lambda a: {**a, "v": a["v"][:, :, :1]}, "mismatched batch, length or heads"),
        (lambda a: {**a, "k": a["k"][..., :3]}, "same shape"),
        (lambda a: {**a, "g": a["g"].long()}, "floating-point"),
        (lambda a: {**a, "v": a["v"].float()}, "share one dtype"),
        (
            lambda a: {**a, "initial_state": torch.zeros(3, 2, 4, 4, dtype=torch.float64)},
            r"initial_state must have shape \(N, H, K, V\) = \(2, 2, 4, 4\)",
        ),
        (lambda a: {**a, "cu_seqlens": torch.tensor([0, 4, 10])}, "B must be 1"),
        (lambda a: {**a, "scale": "0.5"}, "scale must be a Python number"),
    ],
)
def test_bad_input_raises_one_clear_error(change: Callable[[dict], dict], message: str) -> None:  # type: ignore[type-arg]
    q, k, v, g, _ = make_inputs(2, 10, 2, 4, 4, normaliser=1.0)
    args = change({"q": q, "k": k, "v": v, "g": g})
    for fn in (chunk_gla, fused_recurrent_gla):
        with pytest.raises(KernelError, match=message):
            fn(**args)


@not_in_interp
def test_bad_varlen_and_step_inputs() -> None:
    q, k, v, g, _ = make_inputs(1, 10, 2, 4, 4, normaliser=1.0)
    with pytest.raises(KernelError, match="end at T=10"):
        chunk_gla(q, k, v, g, cu_seqlens=torch.tensor([0, 4, 9]))
    with pytest.raises(KernelError, match="never decrease"):
        chunk_gla(q, k, v, g, cu_seqlens=torch.tensor([0, 6, 4, 10]))
    with pytest.raises(KernelError, match="int32/int64"):
        chunk_gla(q, k, v, g, cu_seqlens=torch.tensor([0.0, 10.0]))
    with pytest.raises(KernelError, match="3-D tensor"):
        gla_step(q, k[:, 0], v[:, 0], g[:, 0], None)
    with pytest.raises(KernelError, match="state must have shape"):
        gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], torch.zeros(1, 2, 4, 5))
    with pytest.raises(KernelError, match="the Triton implementation"):  # needs CUDA (or the interpreter)
        chunk_gla(q.float(), k.float(), v.float(), g.float(), impl="triton")


# --- Triton, through the interpreter -----------------------------------------------------------


@pytest.mark.skipif(INTERPRETING, reason="this is the parent of the interpreter run")
def test_triton_kernels_under_interpreter(triton_interpreter_child: Callable[[str, str], str]) -> None:
    out = triton_interpreter_child(__file__, "triton_interp")
    assert "10 passed" in out, out[-2000:]  # every interpreter test ran; none was skipped


@pytest.fixture
def narrow_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """K / V tiles of 16 so that dims of 20-32 run the loops over several blocks."""
    from reasonkit.kernels.gla import triton_chunk_fwd

    monkeypatch.setattr(triton_chunk_fwd, "MAX_BLOCK", 16)


# float32 Triton vs float64 reference. dg is looser: the kernels take exponents as differences of
# float32 chunk cumsums (as fla does), whose rounding grows with the decay inside a chunk.
TRITON_TOL = {"o": 2e-5, "final_state": 2e-5, "dq": 2e-5, "dk": 2e-5, "dv": 2e-5, "dg": 1e-4, "dh0": 2e-5}
TRITON = {"chunk": op(chunk_gla, "triton"), "fused_recurrent": op(fused_recurrent_gla, "triton")}


@interp_only
@pytest.mark.usefixtures("narrow_tiles")
@pytest.mark.parametrize("normaliser", [0.1, 1.0, 10.0])
def test_triton_interp_chunk_matches_reference(normaliser: float) -> None:
    inputs = make_inputs(1, 80, 1, 20, 24, normaliser)  # two chunks, the second padded
    ref = run_with_grads(NAIVE, inputs, torch.float64)
    assert_close_all(run_with_grads(TRITON["chunk"], inputs, torch.float32), ref, TRITON_TOL)


@interp_only
@pytest.mark.parametrize("normaliser", [0.1, 10.0])
def test_triton_interp_fused_recurrent_matches_reference(normaliser: float) -> None:
    inputs = make_inputs(2, 37, 2, 20, 12, normaliser)
    ref = run_with_grads(NAIVE, inputs, torch.float64)
    assert_close_all(run_with_grads(TRITON["fused_recurrent"], inputs, torch.float32), ref, TRITON_TOL)


@interp_only
@pytest.mark.usefixtures("narrow_tiles")
def test_triton_interp_short_sequences_and_no_state() -> None:
    for T in (1, 17):  # chunk sizes 16 and 32
        q, k, v, g, _ = make_inputs(1, T, 1, 8, 8, normaliser=1.0)
        expected, _ = naive_recurrent_gla(q, k, v, g)
        for fn in TRITON.values():
            o, ht = fn(*(x.float() for x in (q, k, v, g)))
            assert ht is None
            assert rel_rms(o.double(), expected) < 2e-5


@interp_only
@pytest.mark.parametrize("path", sorted(TRITON))
def test_triton_interp_varlen_and_state_carry(path: str) -> None:
    check_varlen(TRITON[path], torch.float32, lengths=(3, 0, 21), tol=1e-4)
    q, k, v, g, h0 = (x.float() for x in make_inputs(1, 30, 1, 8, 8, normaliser=1.0))
    o_all, h_all = TRITON[path](q, k, v, g, initial_state=h0, output_final_state=True)
    o1, h1 = TRITON[path](
        q[:, :20], k[:, :20], v[:, :20], g[:, :20], initial_state=h0, output_final_state=True
    )
    o2, h2 = TRITON[path](
        q[:, 20:], k[:, 20:], v[:, 20:], g[:, 20:], initial_state=h1, output_final_state=True
    )
    torch.testing.assert_close(torch.cat([o1, o2], 1), o_all, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h2, h_all, rtol=1e-4, atol=1e-4)


@interp_only
def test_triton_interp_decode_step_loop_equals_full_sequence() -> None:
    q, k, v, g, h0 = (x.float() for x in make_inputs(2, 6, 2, 8, 8, normaliser=1.0))
    o_full, h_full = chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True, impl="torch")
    state: torch.Tensor | None = h0
    outs = []
    for t in range(q.shape[1]):
        o_t, state = gla_step(q[:, t], k[:, t], v[:, t], g[:, t], state, impl="triton")
        outs.append(o_t)
    torch.testing.assert_close(torch.stack(outs, 1), o_full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, h_full, rtol=1e-5, atol=1e-5)


@interp_only
def test_triton_interp_rejects_float64() -> None:
    q, k, v, g, _ = make_inputs(1, 4, 1, 4, 4, normaliser=1.0)
    with pytest.raises(KernelError, match="use impl='torch'"):
        chunk_gla(q, k, v, g, impl="triton")
