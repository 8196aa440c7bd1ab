"""Gated softmax attention: every path against the naive float64 reference, decode steps, bad input.

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

from reasonkit.kernels import KernelError, gated_attention, gated_attention_step

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
interpreter_only = pytest.mark.skipif(
    not INTERPRETING,
    reason="runs in the TRITON_INTERPRET=1 child started by test_triton_kernels_under_interpreter",
)


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


def make_inputs(
    B: int = 2,
    Tq: int = 63,
    Tk: int = 63,
    H: int = 4,
    H_kv: int = 2,
    D: int = 24,
    Dv: int = 20,
    headwise: bool = False,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(B, Tq, H, D), (B, Tk, H_kv, D), (B, Tk, H_kv, Dv), (B, Tq, H, 1 if headwise else Dv)]
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_() for s in shapes]


def padding_mask(B: int, Tk: int) -> torch.Tensor:
    """Left padding of different lengths, plus one batch row with no key at all."""
    mask = torch.ones(B, Tk, dtype=torch.bool)
    mask[0, : Tk // 3] = False
    if B > 1:
        mask[-1] = False
    return mask


def outputs_and_grads(
    inputs: list[torch.Tensor], seed: int = 1, **kwargs: object
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    o = gated_attention(*inputs, **kwargs)  # type: ignore[arg-type]
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(o.dtype)
    return o, torch.autograd.grad(o, inputs, do)


_REFERENCES: dict[str, tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = {}


def reference(
    inputs: list[torch.Tensor], key: str | None = None, **kwargs: object
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Naive float64 output and gradients (memoised by case name: the loop is the slow part)."""
    if key in _REFERENCES:
        return _REFERENCES[key]
    as64 = [t.detach().double().requires_grad_() for t in inputs]
    result = outputs_and_grads(as64, impl="naive", **kwargs)
    if key is not None:
        _REFERENCES[key] = result
    return result


# Shapes: odd T, non-power-of-two dims, grouped-query heads, chunked prefill (Tq < Tk), Tq > Tk.
CASES = {
    "causal-gqa-elementwise": ({"Tq": 63, "Tk": 63}, {"causal": True}),
    "causal-headwise-chunk": ({"Tq": 17, "Tk": 40, "H_kv": 1, "headwise": True}, {"causal": True}),
    "causal-more-queries-than-keys": ({"Tq": 40, "Tk": 17, "H_kv": 4}, {"causal": True}),
    "full-padded": ({"Tq": 33, "Tk": 45}, {"causal": False, "pad": True}),
    "causal-padded-headwise": ({"Tq": 63, "Tk": 63, "headwise": True}, {"causal": True, "pad": True}),
    # one mask row per query (the white-box layer's latent-depth masks): random pattern, empty rows
    "per-query-mask": ({"Tq": 21, "Tk": 38}, {"causal": False, "per_query": True}),
}


def per_query_mask(B: int, Tq: int, Tk: int) -> torch.Tensor:
    mask = torch.rand(B, Tq, Tk, generator=torch.Generator().manual_seed(5)) < 0.4
    mask[0, 3] = False  # a query that sees no key
    return mask


def run_case(name: str, impl: str, dtype: torch.dtype, tol: float) -> None:
    shape, opts = CASES[name]
    inputs = make_inputs(dtype=dtype, **shape)  # type: ignore[arg-type]
    kwargs: dict[str, object] = {"causal": opts["causal"], "scale": 0.3}
    if opts.get("pad"):
        kwargs["attention_mask"] = padding_mask(inputs[0].shape[0], inputs[1].shape[1])
    if opts.get("per_query"):
        kwargs["attention_mask"] = per_query_mask(*inputs[0].shape[:2], inputs[1].shape[1])
    ref_o, ref_grads = reference(inputs, name, **kwargs)
    o, grads = outputs_and_grads(inputs, impl=impl, **kwargs)
    assert o.dtype == dtype and torch.isfinite(o).all()
    assert rel_rms(o, ref_o) < tol, f"{name} output"
    for label, g, rg in zip(("dq", "dk", "dv", "dgate"), grads, ref_grads):
        assert torch.isfinite(g).all(), f"{name} {label} has non-finite values"
        assert rel_rms(g, rg) < tol, f"{name} {label}: {rel_rms(g, rg):.2e}"


@pytest.mark.parametrize("name", list(CASES))
def test_torch_path_matches_reference_in_float64(name: str) -> None:
    run_case(name, "torch", torch.float64, 1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_torch_path_float32_relative_rms_below_1e5(name: str) -> None:
    run_case(name, "torch", torch.float32, 1e-5)


def test_reference_against_hand_computed_softmax() -> None:
    # One query, two keys, one head: o = (e^{s1} v1 + e^{s2} v2) / (e^{s1} + e^{s2}) · σ(g).
    q = torch.tensor([1.0, 2.0], dtype=torch.float64).view(1, 1, 1, 2)
    k = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64).view(1, 2, 1, 2)
    v = torch.tensor([[3.0], [-1.0]], dtype=torch.float64).view(1, 2, 1, 1)
    g = torch.tensor([0.7], dtype=torch.float64).view(1, 1, 1, 1)
    s1, s2 = (0.5 - 2.0) / math.sqrt(2), (2.0 + 0.5) / math.sqrt(2)
    want = (math.exp(s1) * 3.0 - math.exp(s2)) / (math.exp(s1) + math.exp(s2)) / (1 + math.exp(-0.7))
    for impl in ("naive", "torch"):
        assert gated_attention(q, k, v, g, causal=True, impl=impl).item() == pytest.approx(want, rel=1e-12)


def test_causal_mask_is_bottom_right_aligned() -> None:
    # Tq = 3 queries against Tk = 5 keys: query i sees keys 0 .. i + 2.
    q, k, v, g = (t.detach() for t in make_inputs(B=1, Tq=3, Tk=5, H=2, H_kv=2, D=8, Dv=8))
    base = gated_attention(q, k, v, g, impl="naive")
    v2 = v.clone()
    v2[:, 3] += 10.0
    moved = gated_attention(q, k, v2, g, impl="naive")
    assert torch.equal(moved[:, 0], base[:, 0])  # key 3 is in query 0's future
    assert not torch.allclose(moved[:, 1], base[:, 1])  # and visible to query 1
    torch.testing.assert_close(gated_attention(q, k, v, g, impl="torch"), base, rtol=1e-12, atol=1e-12)


def test_a_per_query_mask_equals_the_rule_it_spells_out() -> None:
    # causal + key padding written out as one mask row per query gives the same output on every path
    q, k, v, g = (t.detach() for t in make_inputs(B=2, Tq=5, Tk=9, H=2, H_kv=1, D=8, Dv=8))
    pad = padding_mask(2, 9)
    spelled = torch.ones(5, 9, dtype=torch.bool).tril(diagonal=4)[None] & pad[:, None, :]  # (B, Tq, Tk)
    for impl in ("naive", "torch"):
        want = gated_attention(q, k, v, g, causal=True, attention_mask=pad, impl=impl)
        got = gated_attention(q, k, v, g, causal=False, attention_mask=spelled, impl=impl)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(got[1], torch.zeros_like(got[1]))  # row 1 has no key at all


def test_rows_without_keys_are_zero_not_nan() -> None:
    q, k, v, g = make_inputs(B=2, Tq=6, Tk=4, H=2, H_kv=1, D=8, Dv=8)
    mask = torch.tensor([[True, True, True, True], [False, False, False, False]])
    for impl in ("naive", "torch"):
        o, grads = outputs_and_grads([q, k, v, g], impl=impl, attention_mask=mask)
        assert torch.equal(o[1], torch.zeros_like(o[1]))  # no key kept at all
        assert torch.equal(o[0, :2], torch.zeros_like(o[0, :2]))  # causal: queries 0, 1 precede key 0
        assert all(torch.isfinite(t).all() for t in grads)
        assert torch.equal(grads[3][1], torch.zeros_like(grads[3][1]))


def test_decode_steps_equal_full_attention_with_left_padding() -> None:
    B, T, prompt = 2, 9, 4
    q, k, v, g = (t.detach() for t in make_inputs(B=B, Tq=T, Tk=T, H=4, H_kv=2, D=16, Dv=16))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, :2] = False  # second prompt is left-padded by two tokens
    full = gated_attention(q, k, v, g, attention_mask=mask, impl="naive")
    o, kc, vc = gated_attention_step(
        q[:, :prompt],
        k[:, :prompt],
        v[:, :prompt],
        g[:, :prompt],
        attention_mask=mask[:, :prompt],
        impl="torch",
    )
    outs = [o]
    for t in range(prompt, T):
        o, kc, vc = gated_attention_step(
            q[:, t : t + 1],
            k[:, t : t + 1],
            v[:, t : t + 1],
            g[:, t : t + 1],
            kc,
            vc,
            mask[:, : t + 1],
            impl="torch",
        )
        outs.append(o)
    assert kc.shape == k.shape and torch.equal(kc, k) and torch.equal(vc, v)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-12, atol=1e-12)


def test_empty_sequences_give_zero_output() -> None:
    q, k, v, g = (t.detach() for t in make_inputs(B=1, Tq=3, Tk=0, H=2, H_kv=2, D=8, Dv=8))
    assert torch.equal(gated_attention(q, k, v, g), torch.zeros(1, 3, 2, 8, dtype=torch.float64))
    q, k, v, g = (t.detach() for t in make_inputs(B=0, Tq=3, Tk=3, H=2, H_kv=2, D=8, Dv=8))
    assert gated_attention(q, k, v, g).shape == (0, 3, 2, 8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q": (2, 5, 4)}, "4-D"),
        ({"k": (2, 5, 3, 8), "v": (2, 5, 3, 8)}, "H % H_kv"),
        ({"k": (2, 5, 2, 6)}, "k must be"),
        ({"v": (2, 6, 2, 8)}, "v must be"),
        ({"gate": (2, 5, 4, 3)}, "gate must be"),
    ],
)
def test_bad_shapes_raise_one_clear_error(change: dict[str, tuple[int, ...]], message: str) -> None:
    shapes = {"q": (2, 5, 4, 8), "k": (2, 5, 2, 8), "v": (2, 5, 2, 8), "gate": (2, 5, 4, 8)} | change
    tensors = [torch.randn(shapes[n]) for n in ("q", "k", "v", "gate")]
    with pytest.raises(KernelError, match=message):
        gated_attention(*tensors, impl="torch")


def test_bad_mask_dtype_cache_and_impl_raise() -> None:
    q, k, v, g = (torch.randn(1, 3, 2, 8) for _ in range(4))
    with pytest.raises(KernelError, match="bool key-padding mask"):
        gated_attention(q, k, v, g, attention_mask=torch.ones(1, 3))
    with pytest.raises(KernelError, match="share a dtype"):
        gated_attention(q, k.double(), v, g)
    with pytest.raises(KernelError, match="both k_cache and v_cache"):
        gated_attention_step(q, k, v, g, k_cache=k)
    with pytest.raises(KernelError, match="k_cache must be"):
        gated_attention_step(q, k, v, g, torch.randn(1, 4, 1, 8), torch.randn(1, 4, 2, 8))
    if not INTERPRETING:
        with pytest.raises(KernelError, match="TRITON_INTERPRET"):
            gated_attention(q, k, v, g, impl="triton")
    with pytest.raises(KernelError, match="not one of"):
        gated_attention(q, k, v, g, impl="fast")


# ---- Triton kernels through the interpreter (in a child process) ------------------------------


@pytest.mark.skipif(INTERPRETING, reason="this is the parent of the interpreter run")
def test_triton_kernels_under_interpreter(triton_interpreter_child: Callable[[str, str], str]) -> None:
    out = triton_interpreter_child(__file__, "triton_interp")
    assert "skipped" not in out.strip().splitlines()[-1], "an interpreter test was skipped in the child"


@interpreter_only
@pytest.mark.parametrize("name", list(CASES))
def test_triton_interp_matches_reference(name: str) -> None:
    run_case(name, "triton", torch.float32, 1e-5)


@interpreter_only
def test_triton_interp_strided_inputs_from_a_fused_projection() -> None:
    # q and the gate interleaved in one projection output, as Qwen3-Next's q_proj produces them.
    B, T, H, D = 2, 40, 2, 16
    qg = torch.randn(B, T, H, 2 * D, dtype=torch.float64)
    kv = torch.randn(B, T, 1, 2 * D, dtype=torch.float64)
    inputs = [qg[..., :D], kv[..., :D], kv[..., D:], qg[..., D:]]
    ref = gated_attention(*inputs, impl="naive")
    out = gated_attention(*(t.float() for t in inputs), impl="triton")
    assert rel_rms(out, ref) < 1e-5


@interpreter_only
def test_triton_interp_decode_step_matches_full() -> None:
    q, k, v, g = (t.detach().float() for t in make_inputs(B=2, Tq=20, Tk=20, H=4, H_kv=2, D=16, Dv=16))
    mask = padding_mask(2, 20)
    full = gated_attention(q, k, v, g, attention_mask=mask, impl="naive")
    o, kc, vc = gated_attention_step(
        q[:, :19], k[:, :19], v[:, :19], g[:, :19], attention_mask=mask[:, :19], impl="triton"
    )
    last, _, _ = gated_attention_step(q[:, 19:], k[:, 19:], v[:, 19:], g[:, 19:], kc, vc, mask, impl="triton")
    assert rel_rms(torch.cat([o, last], dim=1), full) < 1e-5


@interpreter_only
def test_triton_interp_float16_is_as_accurate_as_sdpa_in_float16() -> None:
    # (The interpreter emulates bf16 dots incorrectly, so fp16 stands in for the 16-bit paths.)
    inputs = make_inputs(B=1, Tq=40, Tk=40, H=2, H_kv=1, D=32, Dv=32)
    ref_o, ref_grads = reference(inputs, causal=True)
    half = [t.detach().half().requires_grad_() for t in inputs]
    o, grads = outputs_and_grads(half, impl="triton")
    base_o, base_grads = outputs_and_grads(half, impl="torch")
    for out, base, ref in zip((o, *grads), (base_o, *base_grads), (ref_o, *ref_grads)):
        assert out.dtype == torch.float16
        assert rel_rms(out, ref) < 2 * rel_rms(base, ref) + 1e-3


# ---- Compiling for a real GPU without one ------------------------------------------------------

SM90_SHARED_BYTES = 227 * 1024  # H100 / H200 dynamic shared memory per block


def compile_for_sm90(
    kernel: object, dtype: str, constants: dict[str, object], warps: int, stages: int
) -> object:
    """Compile a Triton kernel for sm_90 with the alignment a real launch sees (Triton's bundled ptxas)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = kernel.arg_names  # type: ignore[attr-defined]
    pointers = {"MASK": "*i8", "LSE": "*fp32", "DELTA": "*fp32"}
    signature = {}
    for n in names:
        if n in constants:
            signature[n] = "constexpr"
        elif n in pointers or n in ("Q", "K", "V", "G", "OUT", "DO", "DQ", "DK_", "DV_", "DG"):
            signature[n] = pointers.get(n, f"*{dtype}")
        else:
            signature[n] = "fp32" if n in ("qk_scale", "sm_scale") else "i32"
    aligned = {
        (i,): [["tt.divisibility", 16]]
        for i, n in enumerate(names)
        if signature[n].startswith("*") or (signature[n] == "i32" and n != "GROUP")
    }
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants, attrs=aligned)
    return triton.compile(
        source, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": stages}
    )


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETING, reason="compiles real kernels, not interpreted ones")
@pytest.mark.parametrize(("dtype", "D"), [("bf16", 128), ("bf16", 64), ("fp32", 80), ("fp32", 128)])
def test_kernels_compile_for_sm90_within_shared_memory(dtype: str, D: int) -> None:
    triton = pytest.importorskip("triton")
    from reasonkit.kernels.gated_attention import flash
    from reasonkit.kernels.gated_attention.flash_bwd import bwd_preprocess_kernel

    block = max(16, triton.next_power_of_2(D))
    flags = {"DK": D, "DV": D, "CAUSAL": True, "HAS_MASK": True, "HEADWISE": False}
    flags |= {"PRECISION": "tf32x3" if dtype == "fp32" else "tf32", "BLOCK_DK": block, "BLOCK_DV": block}
    for tuner, fixed in (
        (flash._fwd, flash._FIXED_FWD),
        (flash._dkdv, flash._FIXED_BWD),
        (flash._dq, flash._FIXED_BWD),
    ):
        fitting = []
        for cfg in tuner.configs:
            compiled = compile_for_sm90(tuner.fn, dtype, flags | cfg.kwargs, cfg.num_warps, cfg.num_stages)
            if compiled.metadata.shared <= SM90_SHARED_BYTES:  # type: ignore[attr-defined]
                fitting.append(cfg)
        assert fitting, f"no autotune config of {tuner.fn.__name__} fits in shared memory at {dtype} D={D}"
        # The config used when autotuning is switched off (REASONKIT_TRITON_AUTOTUNE=0) must fit too.
        blocks = {"BLOCK_M": fixed["BLOCK_M"], "BLOCK_N": fixed["BLOCK_N"]}
        compiled = compile_for_sm90(tuner.fn, dtype, flags | blocks, fixed["num_warps"], fixed["num_stages"])
        assert compiled.metadata.shared <= SM90_SHARED_BYTES  # type: ignore[attr-defined]
    pre = {"DV": D, "HEADWISE": False, "BLOCK_DV": block, "BLOCK_M": 64}
    compile_for_sm90(bwd_preprocess_kernel, dtype, pre, 4, 1)
