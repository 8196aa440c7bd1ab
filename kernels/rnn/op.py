"""The public head-wise LSTM / sLSTM functions: input checks, dispatch, and single decode steps.

Implementation chosen by :func:`reasonkit.kernels.dispatch.resolve_impl` (Triton on CUDA, the
torch loop elsewhere, the naive loop on request). Shapes and equations: :mod:`.naive`.
"""

from __future__ import annotations

import torch

from reasonkit.kernels.dispatch import KernelError, resolve_impl
from reasonkit.kernels.rnn.loop import torch_rnn
from reasonkit.kernels.rnn.naive import NUM_STATES, naive_rnn

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(
    kind: str,
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None,
    mask: torch.Tensor | None,
) -> None:
    if wx.dim() != 5 or wx.shape[2] != 4:
        raise KernelError(
            f"{kind}: wx must be the input projection [B, T, 4, N, D] (gates i, f, z, o), "
            f"got shape {tuple(wx.shape)}"
        )
    B, T, G, N, D = wx.shape
    if wx.dtype not in _FLOAT_DTYPES:
        raise KernelError(f"{kind}: wx must be a floating tensor, got {wx.dtype}")
    if r.shape != (G, N, D, D):
        raise KernelError(
            f"{kind}: r must be block-diagonal [4, N, D, D] = {(G, N, D, D)}, got {tuple(r.shape)}"
        )
    if b.shape != (G, N, D):
        raise KernelError(f"{kind}: b must be [4, N, D] = {(G, N, D)}, got {tuple(b.shape)}")
    for name, t in (("r", r), ("b", b)):
        if t.dtype != wx.dtype:
            raise KernelError(f"{kind}: {name} is {t.dtype} but wx is {wx.dtype}; cast them to one dtype")
        if t.device != wx.device:
            raise KernelError(f"{kind}: {name} is on {t.device} but wx on {wx.device}; move them together")
    S = NUM_STATES[kind]
    if states is not None:
        if states.shape != (S, B, N, D):
            names = "(h, c)" if kind == "lstm" else "(h, c, n, m)"
            raise KernelError(
                f"{kind}: states must stack {names} as [{S}, B, N, D] = {(S, B, N, D)}, got {tuple(states.shape)}"
            )
        if not states.is_floating_point() or states.device != wx.device:
            raise KernelError(f"{kind}: states must be a floating tensor on {wx.device}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != (B, T) or mask.device != wx.device):
        raise KernelError(
            f"{kind}: mask must be a bool [B, T] = {(B, T)} tensor on {wx.device} (False = padding, "
            f"state passes through), got {mask.dtype} {tuple(mask.shape)} on {mask.device}"
        )


def _run(
    kind: str,
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None,
    mask: torch.Tensor | None,
    impl: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    _check(kind, wx, r, b, states, mask)
    choice = resolve_impl(wx, impl)
    if choice == "naive":
        return naive_rnn(kind, wx, r, b, states, mask)
    if choice == "torch" or wx.shape[0] == 0 or wx.shape[1] == 0:  # no empty Triton grids
        return torch_rnn(kind, wx, r, b, states, mask)
    from reasonkit.kernels.rnn.fused import fused_rnn

    return fused_rnn(kind, wx, r, b, states, mask)


def lstm(
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-wise LSTM over a precomputed input projection (FlashRNN layout).

    Args:
        wx: [B, T, 4, N, D] input projection, gates (i, f, z, o) as torch.nn.LSTM's (i, f, g, o).
        r: [4, N, D, D] recurrent weights per head; the gate pre-activation adds h_{t-1} @ r[g, n].
        b: [4, N, D] bias.
        states: [2, B, N, D] initial (h, c); zeros when None.
        mask: bool [B, T]; where False the step is skipped (left padding) and the state carries over.
        impl: "naive", "torch" or "triton"; default by device (see ``REASONKIT_KERNELS``).

    Returns:
        (h [B, T, N, D] in wx's dtype, final states [2, B, N, D] in float32, float64 for float64).
    """
    return _run("lstm", wx, r, b, states, mask, impl)


def slstm(
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-wise sLSTM (xLSTM, arXiv 2405.04517) with the stabiliser m and normaliser n.

    Same arguments as :func:`lstm`, but states are [4, B, N, D] = (h, c, n, m); zeros mean an
    empty state (n = 0). Returns (h [B, T, N, D], final states [4, B, N, D]).
    """
    return _run("slstm", wx, r, b, states, mask, impl)


def _step(
    kind: str,
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None,
    impl: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if wx.dim() != 4:
        raise KernelError(f"{kind}_step: wx must be one time step [B, 4, N, D], got shape {tuple(wx.shape)}")
    h, final = _run(kind, wx[:, None], r, b, states, None, impl)
    return h[:, 0], final


def lstm_step(
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    *,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step: wx [B, 4, N, D], states [2, B, N, D] -> (h [B, N, D], new states)."""
    return _step("lstm", wx, r, b, states, impl)


def slstm_step(
    wx: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    states: torch.Tensor | None = None,
    *,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sLSTM step: wx [B, 4, N, D], states [4, B, N, D] -> (h [B, N, D], new states)."""
    return _step("slstm", wx, r, b, states, impl)
