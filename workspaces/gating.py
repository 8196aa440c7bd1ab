"""The recurrent controller and its gate: which module writes into the workspace at each step.

The controller of arXiv 2503.01906 is an LSTM that reads what the workspace broadcasts and picks one
module per step. Here it reads the flattened workspace and the gate it chose last step, updates an
LSTM (or GRU) cell, and scores the modules from ``[h_t, x_t]`` — the skip from the input to the head
lets a purely reactive policy ("this content → that module") be expressed without the recurrence,
which is what :func:`reactive_controller` builds by hand for agent scripts.

The gate (:func:`gate`):
- ``"soft"`` (training): Gumbel-softmax with temperature ``tau`` and the straight-through trick; the
  forward pass is an exact one-hot choice, so the workspace always holds the output of one module,
  and gradients flow through the relaxed probabilities.
- ``"hard"`` (inference): the argmax, no noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

GateMode = Literal["soft", "hard"]
GATE_MODES: tuple[str, ...] = ("soft", "hard")
CellKind = Literal["lstm", "gru"]

ControllerState = tuple[Tensor, ...]


def gumbel_noise(shape: torch.Size, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """Standard Gumbel samples, drawn from ``generator`` so training resumes bit-for-bit."""
    uniform = torch.rand(shape, generator=generator, device=device)
    tiny = torch.finfo(uniform.dtype).tiny
    exponential = (-torch.log(uniform.clamp_min(tiny))).clamp_min(tiny)  # Exp(1) samples, never 0
    return -torch.log(exponential)


def gate(
    logits: Tensor,
    mode: GateMode,
    *,
    tau: float = 1.0,
    straight_through: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One-hot module choices (B, M) from controller logits (B, M); see the module docstring."""
    if logits.dim() != 2:
        raise ValueError(f"gate logits must be (batch, modules), got shape {tuple(logits.shape)}")
    if mode == "hard":
        return nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    if mode != "soft":
        raise ValueError(f"gate mode must be one of {GATE_MODES}, got {mode!r}")
    if not tau > 0:
        raise ValueError(f"Gumbel-softmax temperature tau must be > 0, got {tau}")
    noise = gumbel_noise(logits.shape, generator=generator, device=logits.device)  # (B, M)
    soft = torch.softmax((logits + noise) / tau, dim=-1)  # (B, M)
    if not straight_through:
        return soft
    hard = nn.functional.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    # Straight-through: the value is the hard choice, the gradient is the relaxed softmax's.
    return hard - soft.detach() + soft


class Controller(nn.Module):
    """Recurrent controller: ``x_t = [workspace (S*D), last gate (M)]`` → module logits (M)."""

    def __init__(
        self, workspace_size: int, n_modules: int, hidden: int = 16, cell: CellKind = "lstm"
    ) -> None:
        super().__init__()
        if workspace_size < 1 or n_modules < 2 or hidden < 1:
            raise ValueError(
                f"Controller needs workspace_size >= 1, n_modules >= 2 and hidden >= 1; got "
                f"{workspace_size}, {n_modules}, {hidden}"
            )
        if cell not in ("lstm", "gru"):
            raise ValueError(f"controller cell must be 'lstm' or 'gru', got {cell!r}")
        self.workspace_size = workspace_size
        self.n_modules = n_modules
        self.hidden = hidden
        self.cell_kind: CellKind = cell
        in_dim = workspace_size + n_modules
        self.cell: nn.LSTMCell | nn.GRUCell = (
            nn.LSTMCell(in_dim, hidden) if cell == "lstm" else nn.GRUCell(in_dim, hidden)
        )
        self.head = nn.Linear(hidden + in_dim, n_modules)

    def initial_state(self, batch: int, device=None) -> ControllerState:
        zeros = torch.zeros(batch, self.hidden, device=device)  # (B, H)
        return (zeros, zeros.clone()) if self.cell_kind == "lstm" else (zeros,)

    def forward(
        self, workspace: Tensor, last_gate: Tensor, state: ControllerState
    ) -> tuple[Tensor, ControllerState]:
        """``workspace`` (B, S*D), ``last_gate`` (B, M) → logits (B, M) and the new cell state."""
        if workspace.dim() != 2 or workspace.shape[1] != self.workspace_size:
            raise ValueError(
                f"controller expects a flattened workspace of shape (batch, {self.workspace_size}), "
                f"got {tuple(workspace.shape)}"
            )
        x = torch.cat([workspace, last_gate], dim=-1)  # (B, S*D + M)
        if isinstance(self.cell, nn.LSTMCell):
            h, c = self.cell(x, (state[0], state[1]))  # (B, H) each
            new_state: ControllerState = (h, c)
        else:
            h = self.cell(x, state[0])  # (B, H)
            new_state = (h,)
        logits = self.head(torch.cat([h, x], dim=-1))  # (B, M)
        return logits, new_state


def reactive_controller(
    workspace_size: int,
    n_modules: int,
    rules: Sequence[tuple[int, int]],
    default: int,
    *,
    strength: float = 10.0,
    cell: CellKind = "lstm",
) -> Controller:
    """A controller with hand-set weights: workspace feature ``f`` active → module ``m``.

    ``rules`` pairs (feature index in the flattened workspace, module index); when no rule's feature
    is active the ``default`` module fires. The recurrence is switched off (zero weights), so the
    choice depends on the current workspace only. Features are assumed one-hot or {0, 1} flags, such
    as :class:`~reasonkit.workspaces.text_modules.PatternEncoder` writes.
    """
    controller = Controller(workspace_size, n_modules, hidden=1, cell=cell)
    for feature, module in [*rules, (0, default)]:
        if not 0 <= feature < workspace_size:
            raise ValueError(f"rule feature {feature} is outside the workspace (size {workspace_size})")
        if not 0 <= module < n_modules:
            raise ValueError(f"rule module {module} is outside the {n_modules} modules")
    with torch.no_grad():
        for param in controller.parameters():
            param.zero_()
        weight = controller.head.weight  # (M, H + S*D + M); the workspace starts at column H
        for feature, module in rules:
            weight[module, controller.hidden + feature] += strength
        controller.head.bias[default] = strength / 2
    return controller
