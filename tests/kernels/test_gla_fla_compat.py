"""reasonkit's chunk_gla / fused_recurrent_gla called exactly as flash-linear-attention's.

With ``fla-core`` installed (the dev extra), each argument list is given to both libraries: fla's
public signature decides what the list means (names, positional order, defaults) and fla's own
pure-torch reference, ``fla.ops.gla.naive.naive_recurrent_gla``, computes the result (fla's Triton
kernels need a GPU); ours must match it. Without fla these tests skip with the reason.
Independently of fla: every argument is either honoured or refused with a KernelError naming it.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from reasonkit.kernels import KernelError, chunk_gla, fused_recurrent_gla
from reasonkit.kernels.gla.fla_args import SIGNATURES

OURS = {"chunk_gla": chunk_gla, "fused_recurrent_gla": fused_recurrent_gla}


def fla_ops() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Triton is not supported on current platform" on CPU
        fla_gla = pytest.importorskip(
            "fla.ops.gla", reason="fla-core is not installed (pip install -c constraints.txt -e '.[dev]')"
        )
        naive = pytest.importorskip("fla.ops.gla.naive")
    return fla_gla, naive.naive_recurrent_gla


def inputs(B: int = 2, T: int = 13, H: int = 2, K: int = 8, V: int = 6, seed: int = 0):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(B, T, H, K, generator=gen), torch.randn(B, T, H, K, generator=gen)
    v = torch.randn(B, T, H, V, generator=gen)
    g = F.logsigmoid(torch.randn(B, T, H, K, generator=gen)) / 4
    return q, k, v, g


def fla_reference(name: str, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What fla computes for this call: its public signature binds the arguments, its naive loop runs."""
    fla_gla, naive = fla_ops()
    bound = inspect.signature(getattr(fla_gla, name)).bind(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    q, k, v = a["q"], a["k"], a["v"]
    g = a["g"] if name == "chunk_gla" else a["gk"]
    K = q.shape[-1]
    scale = a["scale"] if a["scale"] is not None else K**-0.5
    h0 = a["initial_state"]
    if h0 is not None and a["state_v_first"]:
        h0 = h0.transpose(-1, -2)
    reverse = a.get("reverse", False)
    if a["cu_seqlens"] is not None:
        b = a["cu_seqlens"].tolist()
        pieces = [(0, b[i], b[i + 1]) for i in range(len(b) - 1)]
    else:
        pieces = [(row, 0, q.shape[1]) for row in range(q.shape[0])]
    outs, states = [], []
    for n, (row, start, end) in enumerate(pieces):
        xs = [x[row : row + 1, start:end] for x in (q, k, v, g)]
        if reverse:
            xs = [x.flip(1) for x in xs]
        xs[0] = xs[0] * (scale / K**-0.5)  # the naive loop has no scale argument
        o, h = naive(*xs, None if h0 is None else h0[n : n + 1], True)
        outs.append(o.flip(1) if reverse else o)
        states.append(h)
    o = torch.cat(outs, dim=1) if a["cu_seqlens"] is not None else torch.cat(outs, dim=0)
    h = torch.cat(states)
    if a["state_v_first"]:
        h = h.transpose(-1, -2)
    return o, (h if a["output_final_state"] else None)


def test_positional_order_and_names_are_fla_s():
    fla_gla, _ = fla_ops()
    for name, ours in OURS.items():
        theirs = [
            p.name
            for p in inspect.signature(getattr(fla_gla, name)).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        mine = [
            p.name for p in inspect.signature(ours).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        assert mine == theirs == list(SIGNATURES[name]), name


def _cases() -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
    q, k, v, g = inputs()
    h0 = torch.randn(2, 2, 8, 6, generator=torch.Generator().manual_seed(5))
    packed = [x.reshape(1, -1, *x.shape[2:]) for x in (q, k, v, g)]
    cu = torch.tensor([0, 4, 11, 26])
    h0_packed = torch.randn(3, 2, 8, 6, generator=torch.Generator().manual_seed(6))
    cases: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
    for name in OURS:
        gate = "g" if name == "chunk_gla" else "gk"
        cases += [
            (name, "positional gate", (q, k, v, g), {}),
            (name, "keyword gate", (q, k, v), {gate: g, "output_final_state": True}),
            (
                name,
                "state and scale",
                (q, k, v, g),
                {"scale": 0.3, "initial_state": h0, "output_final_state": True},
            ),
            (
                name,
                "state_v_first",
                (q, k, v, g),
                {"initial_state": h0.transpose(-1, -2), "output_final_state": True, "state_v_first": True},
            ),
            (
                name,
                "packed",
                tuple(packed),
                {"initial_state": h0_packed, "output_final_state": True, "cu_seqlens": cu},
            ),
        ]
    cases += [
        ("chunk_gla", "all positional", (q, k, v, g, 0.5, h0, True, False, None, None), {}),
        ("fused_recurrent_gla", "all positional", (q, k, v, g, None, 0.5, h0, True, False, False, None), {}),
        (
            "fused_recurrent_gla",
            "reverse",
            (q, k, v, g),
            {"initial_state": h0, "output_final_state": True, "reverse": True},
        ),
        (
            "fused_recurrent_gla",
            "reverse packed",
            tuple(packed),
            {"reverse": True, "output_final_state": True, "cu_seqlens": cu},
        ),
    ]
    return cases


@pytest.mark.parametrize(
    ("name", "label", "args", "kwargs"), _cases(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_same_call_same_numbers_as_fla(name, label, args, kwargs):
    o_ref, h_ref = fla_reference(name, *args, **kwargs)
    o, h = OURS[name](*args, **kwargs)
    torch.testing.assert_close(o, o_ref, rtol=2e-5, atol=2e-5)
    assert (h is None) == (h_ref is None), label
    if h is not None:
        torch.testing.assert_close(h, h_ref, rtol=2e-5, atol=2e-5)


def test_reverse_equals_the_flipped_sequence_and_keeps_gradients():
    """Without fla: reverse is the forward recurrence over time-flipped inputs, gradients included."""
    xs = [x.double().requires_grad_() for x in inputs(B=1, T=9)]
    o, h = fused_recurrent_gla(*xs, output_final_state=True, reverse=True, impl="torch")
    o_flip, h_flip = chunk_gla(*(x.flip(1) for x in xs), output_final_state=True, impl="naive")
    torch.testing.assert_close(o, o_flip.flip(1))
    torch.testing.assert_close(h, h_flip)
    grads = torch.autograd.grad((o * o).sum() + h.sum(), xs)
    grads_ref = torch.autograd.grad((o_flip * o_flip).sum() + h_flip.sum(), xs)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda q, k, v, g: fused_recurrent_gla(q, k, v, g, gv=torch.zeros_like(v)), "gv"),
        (lambda q, k, v, g: fused_recurrent_gla(q, k, v, g, 0.5), "gv"),  # reasonkit's old order: scale 5th
        (lambda q, k, v, g: fused_recurrent_gla(q, k, v, g, head_first=False), "head_first"),
        (lambda q, k, v, g: chunk_gla(q, k, v, g, use_qk_l2norm=True), "use_qk_l2norm"),
        (lambda q, k, v, g: chunk_gla(q, k, v, g, gk=g), "passed twice"),
        (lambda q, k, v, g: fused_recurrent_gla(q, k, v), "gate is missing"),
        (
            lambda q, k, v, g: chunk_gla(q, k, v, g, cu_seqlens_cpu=torch.tensor([0, 13])),
            "pass cu_seqlens too",
        ),
        (lambda q, k, v, g: chunk_gla(q, k, v, g, reverse=1), "reverse must be True or False"),
    ],
)
def test_what_cannot_apply_is_a_kernel_error_naming_it(call, needle):
    with pytest.raises(KernelError, match=needle):
        call(*inputs())


def test_our_old_keyword_and_fla_s_deprecated_alias_still_work():
    q, k, v, g = inputs()
    o_ref, h_ref = chunk_gla(q, k, v, g, output_final_state=True)
    o, h = fused_recurrent_gla(q, k, v, g=g, output_final_state=True)
    torch.testing.assert_close(o, o_ref, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(h, h_ref, rtol=2e-5, atol=2e-5)
    _, h_t = fused_recurrent_gla(q, k, v, g, output_final_state=True, transpose_state_layout=True)
    torch.testing.assert_close(h_t, h.transpose(-1, -2))
