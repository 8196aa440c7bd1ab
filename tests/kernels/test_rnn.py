"""Head-wise LSTM / sLSTM: every path against the naive float64 loop, torch.nn.LSTM, state carry,
decode steps, left padding, bad input.

The Triton kernels run through ``TRITON_INTERPRET=1`` in a child pytest process (the interpreter is
chosen when triton.jit decorates a kernel, so it must be set before the kernel module is imported
and must not leak into other tests); ``test_triton_kernels_under_interpreter`` starts it with the
``triton_interpreter_child`` fixture of tests/kernels/conftest.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest
import torch

from reasonkit.kernels import KernelError, lstm, lstm_step, slstm, slstm_step

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
interpreter_only = pytest.mark.skipif(
    not INTERPRETING,
    reason="runs in the TRITON_INTERPRET=1 child started by test_triton_kernels_under_interpreter",
)
OPS = {"lstm": lstm, "slstm": slstm}
STEPS = {"lstm": lstm_step, "slstm": slstm_step}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: intra-op threads only add synchronisation cost on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel_rms(out: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    return ((out.double() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def make_params(
    kind: str, B: int = 3, T: int = 63, N: int = 2, D: int = 12, states: bool = True, seed: int = 0
) -> list[torch.Tensor]:
    """wx, r, b and (optionally) non-zero initial states, in float64."""
    gen = torch.Generator().manual_seed(seed)
    wx = torch.randn(B, T, 4, N, D, generator=gen, dtype=torch.float64)
    r = torch.randn(4, N, D, D, generator=gen, dtype=torch.float64) * 1.5 / math.sqrt(D)
    b = torch.randn(4, N, D, generator=gen, dtype=torch.float64) * 0.5
    params = [wx, r, b]
    if states:
        s = torch.randn(4 if kind == "slstm" else 2, B, N, D, generator=gen, dtype=torch.float64)
        if kind == "slstm":
            s[2] = s[2].abs() + 0.5  # a normaliser is positive
            s[3] = s[3] * 0.5
        params.append(s)
    return params


def left_pad_mask(B: int, T: int) -> torch.Tensor:
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, :5] = False
    mask[-1, : T // 2] = False
    return mask


def run_with_grads(
    kind: str,
    params: list[torch.Tensor],
    impl: str,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(h, final states, grads of a random linear loss on both w.r.t. every input)."""
    inputs = [p.detach().to(dtype or p.dtype).requires_grad_() for p in params]
    states = inputs[3] if len(inputs) > 3 else None
    h, final = OPS[kind](inputs[0], inputs[1], inputs[2], states, mask, impl=impl)
    gen = torch.Generator().manual_seed(7)
    dh = torch.randn(h.shape, generator=gen, dtype=torch.float64).to(h.dtype)
    dfinal = torch.randn(final.shape, generator=gen, dtype=torch.float64).to(final.dtype)
    grads = torch.autograd.grad((h * dh).sum() + (final * dfinal).sum(), inputs)
    return h, final, grads


def check_against_reference(
    kind: str, impl: str, dtype: torch.dtype, tol: float, masked: bool, **sizes: int
) -> None:
    params = make_params(kind, **sizes)
    mask = left_pad_mask(params[0].shape[0], params[0].shape[1]) if masked else None
    ref_h, ref_final, ref_grads = run_with_grads(kind, params, "naive", mask)
    h, final, grads = run_with_grads(kind, params, impl, mask, dtype)
    assert h.dtype == dtype and torch.isfinite(h).all()
    assert rel_rms(h, ref_h) < tol
    assert rel_rms(final, ref_final) < tol
    for label, g, rg in zip(("dwx", "dr", "db", "dstates"), grads, ref_grads):
        assert torch.isfinite(g).all(), label
        assert rel_rms(g, rg) < tol, f"{label}: {rel_rms(g, rg):.2e}"


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
@pytest.mark.parametrize("masked", [False, True])
def test_torch_loop_matches_reference_in_float64(kind: str, masked: bool) -> None:
    check_against_reference(kind, "torch", torch.float64, 1e-12, masked)


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_torch_loop_float32_relative_rms_below_1e5(kind: str) -> None:
    check_against_reference(kind, "torch", torch.float32, 1e-5, masked=True)


def test_lstm_reference_equals_torch_nn_lstm() -> None:
    D, B, T = 7, 3, 11
    torch.manual_seed(0)
    cell = torch.nn.LSTM(D, D, batch_first=True).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0, c0 = torch.randn(1, B, D, dtype=torch.float64), torch.randn(1, B, D, dtype=torch.float64)
    want, (hT, cT) = cell(x, (h0, c0))
    # torch.nn.LSTM: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, rows ordered (i, f, g, o).
    wx = (x @ cell.weight_ih_l0.T).view(B, T, 4, 1, D)
    r = cell.weight_hh_l0.view(4, D, D).transpose(1, 2)[:, None]  # (4, 1, D_in, D_out)
    b = (cell.bias_ih_l0 + cell.bias_hh_l0).view(4, 1, D)
    states = torch.stack([h0[0], c0[0]])[:, :, None]  # (2, B, 1, D)
    for impl in ("naive", "torch"):
        h, final = lstm(wx, r, b, states, impl=impl)
        torch.testing.assert_close(h[:, :, 0], want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(final[:, :, 0], torch.cat([hT, cT]), rtol=1e-12, atol=1e-12)


def test_slstm_reference_against_unstabilised_recurrence() -> None:
    # Without the stabiliser: C_t = σ(f̃) C + e^ĩ tanh(z̃), N_t = σ(f̃) N + e^ĩ, h_t = σ(õ) C_t / N_t.
    B, T, D = 2, 9, 5
    wx, r, b = make_params("slstm", B=B, T=T, N=1, D=D, states=False)
    h, final = slstm(wx, r, b, impl="naive")
    hp, C, N = torch.zeros(B, D, dtype=torch.float64), torch.zeros(B, D, dtype=torch.float64), 0.0
    for t in range(T):
        pre = wx[:, t, :, 0] + torch.einsum("bi,gij->bgj", hp, r[:, 0]) + b[:, 0]  # (B, 4, D)
        C = torch.sigmoid(pre[:, 1]) * C + pre[:, 0].exp() * pre[:, 2].tanh()
        N = torch.sigmoid(pre[:, 1]) * N + pre[:, 0].exp()
        hp = torch.sigmoid(pre[:, 3]) * C / N
        torch.testing.assert_close(h[:, t, 0], hp, rtol=1e-12, atol=1e-12)
    # The stored (c, n) are C, N rescaled by e^{-m}.
    m = final[3, :, 0]
    torch.testing.assert_close(final[1, :, 0], C * torch.exp(-m), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final[2, :, 0], N * torch.exp(-m), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", ["naive", "torch"])
def test_slstm_stays_finite_with_extreme_gates(impl: str) -> None:
    wx, r, b = make_params("slstm", T=40, states=False)
    h, final = slstm(wx * 60.0, r, b, impl=impl)  # e^ĩ would overflow float64 without the stabiliser
    assert torch.isfinite(h).all() and torch.isfinite(final).all()


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
@pytest.mark.parametrize("impl", ["naive", "torch"])
def test_state_carry_first_half_then_second_equals_whole(kind: str, impl: str) -> None:
    wx, r, b, s0 = make_params(kind, T=30)
    whole_inputs = [t.clone().requires_grad_() for t in (wx, r, b, s0)]
    h, final = OPS[kind](*whole_inputs, impl=impl)
    loss_whole = h.square().sum() + final[:3].sum()
    split_inputs = [t.clone().requires_grad_() for t in (wx, r, b, s0)]
    w, rr, bb, s = split_inputs
    h1, mid = OPS[kind](w[:, :13], rr, bb, s, impl=impl)
    h2, final2 = OPS[kind](w[:, 13:], rr, bb, mid, impl=impl)
    torch.testing.assert_close(torch.cat([h1, h2], dim=1), h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final2, final, rtol=1e-12, atol=1e-12)
    loss_split = h1.square().sum() + h2.square().sum() + final2[:3].sum()
    for a, c in zip(
        torch.autograd.grad(loss_whole, whole_inputs), torch.autograd.grad(loss_split, split_inputs)
    ):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_step_loop_equals_full_sequence(kind: str) -> None:
    wx, r, b, s = make_params(kind, T=10)
    h, final = OPS[kind](wx, r, b, s, impl="torch")
    steps = []
    for t in range(10):
        ht, s = STEPS[kind](wx[:, t], r, b, s, impl="torch")
        steps.append(ht)
    torch.testing.assert_close(torch.stack(steps, dim=1), h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, final, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
@pytest.mark.parametrize("impl", ["naive", "torch"])
def test_left_padding_mask_equals_running_the_unpadded_sequence(kind: str, impl: str) -> None:
    wx, r, b = make_params(kind, B=2, T=12, states=False)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, :4] = False  # row 1 is a length-8 sequence left-padded by 4
    h, final = OPS[kind](wx, r, b, mask=mask, impl=impl)
    h_alone, final_alone = OPS[kind](wx[1:, 4:], r, b, impl=impl)
    assert torch.equal(h[1, :4], torch.zeros_like(h[1, :4]))  # state (zeros) passed through the pads
    torch.testing.assert_close(h[1:, 4:], h_alone, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final[:, 1:], final_alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_empty_sequence_returns_the_initial_states(kind: str) -> None:
    wx, r, b, s = make_params(kind, B=2, T=0)
    h, final = OPS[kind](wx, r, b, s)
    assert h.shape == (2, 0, 2, 12) and torch.equal(final, s)
    h, final = OPS[kind](wx[:0], r, b)
    assert h.shape == (0, 0, 2, 12) and final.shape[1] == 0


def test_bad_input_raises_one_clear_error() -> None:
    wx, r, b, s = make_params("lstm", T=4)
    with pytest.raises(KernelError, match=r"\[B, T, 4, N, D\]"):
        lstm(wx[:, :, :3], r, b)
    with pytest.raises(KernelError, match="block-diagonal"):
        lstm(wx, r[:, :, :5], b)
    with pytest.raises(KernelError, match=r"b must be \[4, N, D\]"):
        lstm(wx, r, b[:, :1])
    with pytest.raises(KernelError, match=r"\(h, c, n, m\)"):
        slstm(wx, r, b, s)  # LSTM-shaped states
    with pytest.raises(KernelError, match="cast them to one dtype"):
        lstm(wx, r.float(), b)
    with pytest.raises(KernelError, match="mask must be a bool"):
        lstm(wx, r, b, mask=torch.ones(3, 4))
    with pytest.raises(KernelError, match="one time step"):
        lstm_step(wx, r, b)


# ---- Triton kernels through the interpreter (in a child process) ------------------------------


@pytest.mark.skipif(INTERPRETING, reason="this is the parent of the interpreter run")
def test_triton_kernels_under_interpreter(triton_interpreter_child: Callable[[str, str], str]) -> None:
    out = triton_interpreter_child(__file__, "triton_interp")
    assert "skipped" not in out.strip().splitlines()[-1], "an interpreter test was skipped in the child"


@interpreter_only
@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_triton_interp_matches_reference(kind: str) -> None:
    # B = 18: two batch blocks, the second ragged; D = 24: padded to 32 lanes; odd T.
    check_against_reference(kind, "triton", torch.float32, 1e-5, masked=True, B=18, T=33, N=2, D=24)


@interpreter_only
@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_triton_interp_without_states_and_step(kind: str) -> None:
    check_against_reference(
        kind, "triton", torch.float32, 1e-5, masked=False, B=2, T=9, N=3, D=16, states=False
    )
    wx, r, b, s = (t.float() for t in make_params(kind, B=2, T=3, N=1, D=16))
    h, final = OPS[kind](wx, r, b, s, impl="naive")
    h0, s1 = STEPS[kind](wx[:, 0], r, b, s, impl="triton")
    assert rel_rms(h0, h[:, 0]) < 1e-5
    h_rest, s_end = OPS[kind](wx[:, 1:], r, b, s1, impl="triton")
    assert rel_rms(h_rest, h[:, 1:]) < 1e-5 and rel_rms(s_end, final) < 1e-5


@interpreter_only
@pytest.mark.parametrize("kind", ["lstm", "slstm"])
def test_triton_interp_float16_is_as_accurate_as_the_torch_loop(kind: str) -> None:
    # (The interpreter emulates bf16 dots incorrectly, so fp16 stands in for the 16-bit paths.)
    params = make_params(kind, B=3, T=17, N=2, D=16)
    ref = run_with_grads(kind, params, "naive")
    out = run_with_grads(kind, params, "triton", dtype=torch.float16)
    base = run_with_grads(kind, params, "torch", dtype=torch.float16)
    assert out[0].dtype == torch.float16 and out[1].dtype == torch.float32
    for o, bs, rf in zip((out[0], out[1], *out[2]), (base[0], base[1], *base[2]), (ref[0], ref[1], *ref[2])):
        assert rel_rms(o, rf) < 4 * rel_rms(bs, rf) + 2e-3


# ---- Compiling for a real GPU without one ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETING, reason="compiles real kernels, not interpreted ones")
@pytest.mark.parametrize(
    ("dtype", "D"), [(torch.bfloat16, 64), (torch.bfloat16, 128), (torch.float32, 48), (torch.float32, 128)]
)
def test_kernels_compile_for_sm90_within_shared_memory(dtype: torch.dtype, D: int) -> None:
    """Real-compile check with Triton's bundled ptxas: dot shapes, dtypes, shared memory, registers."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from reasonkit.kernels.rnn import fused, fused_kernels

    params = fused._launch_params(torch.empty(0, dtype=dtype), D)
    io = {"bfloat16": "*bf16", "float32": "*fp32"}[str(dtype).removeprefix("torch.")]
    for kernel, extra in (
        (fused_kernels.rnn_fwd_kernel, {"STORE": True}),
        (fused_kernels.rnn_bwd_kernel, {}),
    ):
        constants = {
            "SLSTM": True,
            "HAS_MASK": True,
            **extra,
            **{k: v for k, v in params.items() if k not in ("num_warps", "num_stages")},
        }
        signature = {}
        for n in kernel.arg_names:
            if n in constants:
                signature[n] = "constexpr"
            elif n in ("WX", "R", "BIAS", "H_OUT"):
                signature[n] = io
            elif n == "MASK":
                signature[n] = "*i8"
            else:
                signature[n] = "*fp32" if n.isupper() and n not in ("B", "T", "D") else "i32"
        aligned = {
            (i,): [["tt.divisibility", 16]]
            for i, n in enumerate(kernel.arg_names)
            if signature[n] != "constexpr"
        }
        source = ASTSource(fn=kernel, signature=signature, constexprs=constants, attrs=aligned)
        options = {"num_warps": params["num_warps"], "num_stages": params["num_stages"]}
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
        assert compiled.metadata.shared <= 227 * 1024, (
            f"{kernel.fn.__name__} needs {compiled.metadata.shared} B"
        )
