"""flash-linear-attention's argument conventions for ``chunk_gla`` / ``fused_recurrent_gla``.

fla (``fla.ops.gla``, 0.6) names and orders the arguments of its two GLA entry points differently::

    chunk_gla(q, k, v, g, scale, initial_state, output_final_state, state_v_first, cu_seqlens, cu_seqlens_cpu)
    fused_recurrent_gla(q, k, v, gk, gv, scale, initial_state, output_final_state, reverse, state_v_first,
                        cu_seqlens, **kwargs)

reasonkit's functions take exactly these lists, so a call moves between the libraries unchanged. What
is cheap is implemented here, around the kernels: ``reverse`` (the recurrence runs from the last token
to the first, each packed sequence on its own: flip time, run, flip back), ``state_v_first`` (states
in (N, H, V, K) layout: transpose in and out), ``cu_seqlens_cpu`` (a host copy of ``cu_seqlens``,
checked against it). What is not — a value-side gate ``gv`` — and any argument neither library
defines raise :class:`~reasonkit.kernels.dispatch.KernelError` naming it; nothing is ignored (fla
itself drops an unknown keyword such as ``g=`` into ``**kwargs``, which silently loses the gate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from reasonkit.kernels.dispatch import KernelError

#: fla's deprecated alias of ``state_v_first`` (fused_recurrent_gla only), honoured as fla honours it
DEPRECATED_STATE_V_FIRST = "transpose_state_layout"


@dataclass
class FlaCall:
    """One call's arguments after fla's conventions are resolved: the gate, the layout, the direction."""

    g: torch.Tensor
    initial_state: torch.Tensor | None
    state_v_first: bool
    reverse: bool
    cu_seqlens: torch.Tensor | None


def resolve(
    op: str,
    *,
    gates: Mapping[str, torch.Tensor | None],
    gv: torch.Tensor | None = None,
    initial_state: torch.Tensor | None,
    state_v_first: bool,
    reverse: bool,
    cu_seqlens: torch.Tensor | None,
    cu_seqlens_cpu: torch.Tensor | None,
    extra: Mapping[str, Any],
) -> FlaCall:
    """Check fla-style arguments and return what the kernels run; KernelError names what cannot apply.

    ``gates`` maps each accepted name of the key-side forget gate (``g``, ``gk``) to what was passed.
    """
    extra = dict(extra)
    old = DEPRECATED_STATE_V_FIRST
    if old in extra and op == "fused_recurrent_gla":
        if state_v_first:
            raise KernelError(f"{op}: pass state_v_first or its deprecated alias {old}, not both")
        state_v_first = extra.pop(old)
    if extra:
        raise KernelError(
            f"{op}: unsupported argument(s) {sorted(extra)}; reasonkit's {op} takes fla's arguments "
            f"({', '.join(SIGNATURES[op])}) plus impl=, and never ignores one"
        )
    given = {name: x for name, x in gates.items() if x is not None}
    if len(given) > 1:
        raise KernelError(f"{op}: the forget gate was passed twice ({' and '.join(given)}); pass one of them")
    if not given:
        raise KernelError(
            f"{op}: the key-side forget gate is missing; pass it as {' or '.join(gates)} (log decay, any value ≤ 0)"
        )
    ((name, g),) = given.items()
    if not isinstance(g, torch.Tensor):
        raise KernelError(
            f"{op}: {name} must be a torch.Tensor (B, T, H, K), got {type(g).__name__}; fla's argument "
            f"order is ({', '.join(SIGNATURES[op])})"
        )
    if gv is not None:
        what = type(gv).__name__ if not isinstance(gv, torch.Tensor) else f"a tensor {tuple(gv.shape)}"
        raise KernelError(
            f"{op}: gv (a value-side forget gate) is not supported by reasonkit's GLA kernels, got {what}; "
            "leave it None (if a number was meant as scale, fla's order puts gv before scale: pass scale=)"
        )
    for flag, value in (("reverse", reverse), ("state_v_first", state_v_first)):
        if not isinstance(value, bool):
            raise KernelError(f"{op}: {flag} must be True or False, got {value!r}")
    if cu_seqlens_cpu is not None:
        if cu_seqlens is None:
            raise KernelError(f"{op}: cu_seqlens_cpu is a host copy of cu_seqlens; pass cu_seqlens too")
        if not isinstance(cu_seqlens_cpu, torch.Tensor) or cu_seqlens_cpu.tolist() != cu_seqlens.tolist():
            raise KernelError(f"{op}: cu_seqlens_cpu must equal cu_seqlens (a host copy of the same offsets)")
    if state_v_first and initial_state is not None:
        if not isinstance(initial_state, torch.Tensor) or initial_state.dim() != 4:
            raise KernelError(f"{op}: initial_state must be a 4-D tensor (N, H, V, K) with state_v_first")
        initial_state = initial_state.transpose(-1, -2)
    return FlaCall(g, initial_state, state_v_first, reverse, cu_seqlens)


def time_reversal(length: int, cu_seqlens: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Indices that reverse time within each sequence: the whole row, or each packed sequence."""
    if cu_seqlens is None:
        return torch.arange(length - 1, -1, -1, device=device)
    bounds = cu_seqlens.to(device=device, dtype=torch.long)
    seq = torch.repeat_interleave(torch.arange(bounds.numel() - 1, device=device), bounds[1:] - bounds[:-1])
    t = torch.arange(length, device=device)
    return bounds[:-1][seq] + bounds[1:][seq] - 1 - t


SIGNATURES: dict[str, tuple[str, ...]] = {
    "chunk_gla": (
        "q",
        "k",
        "v",
        "g",
        "scale",
        "initial_state",
        "output_final_state",
        "state_v_first",
        "cu_seqlens",
        "cu_seqlens_cpu",
    ),
    "fused_recurrent_gla": (
        "q",
        "k",
        "v",
        "gk",
        "gv",
        "scale",
        "initial_state",
        "output_final_state",
        "reverse",
        "state_v_first",
        "cu_seqlens",
    ),
}
