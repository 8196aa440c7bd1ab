"""Gated attention on a real GPU: the compiled Triton kernels against the float64 SDPA path.

Run on a CUDA machine with ``pytest -m gpu tests/kernels/test_gated_attention_gpu.py``. These sizes
exercise what the CPU interpreter cannot: autotuned block shapes, tensor-core dots in bf16/fp16,
shared-memory limits at head dim 128, and long causal sequences. The torch path itself is checked
against the naive loop in tests/kernels/test_gated_attention.py.
"""

from __future__ import annotations

import pytest
import torch

from reasonkit.kernels import gated_attention, gated_attention_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _fixed_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """One launch config per kernel: autotuning would compile ~19 variants per shape class here.
    test_autotuned_kernels_match_reference turns it back on."""
    monkeypatch.setenv("REASONKIT_TRITON_AUTOTUNE", "0")


def rel_rms(out: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    return ((out.double() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def run(
    inputs: list[torch.Tensor], impl: str, dtype: torch.dtype, **kwargs: object
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    cast = [t.detach().to(dtype).requires_grad_() for t in inputs]
    o = gated_attention(*cast, impl=impl, **kwargs)  # type: ignore[arg-type]
    do = torch.randn(o.shape, generator=torch.Generator("cuda").manual_seed(1), device="cuda").to(dtype)
    return o, torch.autograd.grad(o, cast, do)


# (B, Tq, Tk, H, H_kv, D, headwise, causal, padded)
SIZES = {
    "d128-gqa-causal": (2, 1024, 1024, 8, 2, 128, False, True, False),
    "d64-headwise-padded": (4, 512, 512, 8, 8, 64, True, True, True),
    "d80-odd-T-chunked": (2, 301, 777, 4, 1, 80, False, True, True),
    "d32-full-attention": (3, 255, 255, 4, 2, 32, False, False, True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", list(SIZES))
def test_triton_matches_float64_reference(name: str, dtype: torch.dtype) -> None:
    B, Tq, Tk, H, H_kv, D, headwise, causal, padded = SIZES[name]
    gen = torch.Generator("cuda").manual_seed(0)
    shapes = [(B, Tq, H, D), (B, Tk, H_kv, D), (B, Tk, H_kv, D), (B, Tq, H, 1 if headwise else D)]
    inputs = [torch.randn(s, generator=gen, device="cuda", dtype=torch.float64) for s in shapes]
    kwargs: dict[str, object] = {"causal": causal}
    if padded:
        mask = torch.ones(B, Tk, dtype=torch.bool, device="cuda")
        mask[0, : Tk // 4] = False
        mask[-1] = False  # a batch row with no key at all must give 0
        kwargs["attention_mask"] = mask
    ref_o, ref_g = run(inputs, "torch", torch.float64, **kwargs)
    o, grads = run(inputs, "triton", dtype, **kwargs)
    if dtype == torch.float32:
        bounds = [1e-4] * 5  # fp32 dots run in IEEE precision
    else:
        # Low precision: within 2x the error of the SDPA path in the same dtype (plus a floor).
        base_o, base_g = run(inputs, "torch", dtype, **kwargs)
        bounds = [2 * rel_rms(a, b) + 2e-3 for a, b in zip((base_o, *base_g), (ref_o, *ref_g))]
    for label, out, ref, bound in zip(("o", "dq", "dk", "dv", "dgate"), (o, *grads), (ref_o, *ref_g), bounds):
        assert torch.isfinite(out).all(), f"{name} {label} not finite"
        assert rel_rms(out, ref) < bound, f"{name} {dtype} {label}: {rel_rms(out, ref):.2e} >= {bound:.2e}"
    if padded:
        assert torch.equal(o[-1], torch.zeros_like(o[-1]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_triton_decode_steps_match_full_attention(dtype: torch.dtype) -> None:
    B, T, H, H_kv, D = 4, 300, 8, 2, 128
    gen = torch.Generator("cuda").manual_seed(0)
    q, g = (torch.randn(B, T, H, D, generator=gen, device="cuda", dtype=dtype) for _ in range(2))
    k, v = (torch.randn(B, T, H_kv, D, generator=gen, device="cuda", dtype=dtype) for _ in range(2))
    mask = torch.ones(B, T, dtype=torch.bool, device="cuda")
    mask[1, :37] = False
    full = gated_attention(q, k, v, g, attention_mask=mask, impl="torch")
    o, kc, vc = gated_attention_step(
        q[:, :290], k[:, :290], v[:, :290], g[:, :290], attention_mask=mask[:, :290]
    )
    outs = [o]
    for t in range(290, T):
        s = slice(t, t + 1)
        o, kc, vc = gated_attention_step(q[:, s], k[:, s], v[:, s], g[:, s], kc, vc, mask[:, : t + 1])
        outs.append(o)
    bound = 1e-5 if dtype == torch.float32 else 1e-2
    assert rel_rms(torch.cat(outs, dim=1), full) < bound


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_autotuned_kernels_match_reference(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONKIT_TRITON_AUTOTUNE", "1")
    test_triton_matches_float64_reference("d128-gqa-causal", dtype)
