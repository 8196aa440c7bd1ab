"""The gated router: a controller chains specialised modules through one workspace (arXiv 2503.01906).

Every step: the controller reads the broadcast workspace, the gate picks one module, that module's
output becomes the new workspace content, and the loop repeats until the halting module (the Output
module) fires. Two ways to run it:

- :meth:`GatedRouter.forward` — the differentiable path for neural modules. Every module proposes an
  update for every item and the (straight-through) gate selects one; the halting module's readout is
  taken at every step, and the answer distribution is the halting-probability-weighted mixture
  ``log sum_t q_t p_t(y)`` (an episode that never halts is read out when its time runs out).
- :meth:`GatedRouter.run` — hard routing for inference and for backend-driven modules (an LLM step,
  a calculator, a verifier): each item is sent only to the module it chose, so an LLM is called only
  for the items that need it. It returns the module sequence, answer and text history per item.

    >>> router = GatedRouter([InputModule(...), Increment(...), Readout(...)], controller, slots=2, width=40)
    >>> out = router(stimulus, mode="soft", tau=1.0)        # training
    >>> results = router.run(stimulus)                        # inference: results[i].modules, .answer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from reasonkit.workspaces.gating import Controller, GateMode, gate
from reasonkit.workspaces.state import History, WorkspaceState, batch_size_of


class WorkspaceModule(nn.Module):
    """A specialised module: reads the workspace (and the stimulus), proposes the next workspace.

    Subclasses set ``name`` and implement ``forward(state) -> state``. The one module with
    ``halts = True`` is the Output module: firing it ends the episode and its ``readout(state)`` is
    the answer — log-probabilities (B, C) for neural readouts, a list of B strings for text.
    ``uses_text = True`` asks the router to keep the text side of the workspace.
    """

    name: str = "module"
    halts: bool = False
    uses_text: bool = False

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(state) -> state")

    def readout(self, state: WorkspaceState) -> Any:
        raise NotImplementedError(f"{type(self).__name__} halts but does not implement readout(state)")


@dataclass
class RouterOutput:
    """What the differentiable path returns for a batch of B items over T steps (M modules, C answers)."""

    gates: Tensor  # (B, T, M) one-hot in value; soft gradients when mode="soft"
    halt_prob: Tensor  # (B, T) probability that the episode halts at step t
    remainder: Tensor  # (B,) probability it never halts within T steps
    log_probs: Tensor  # (B, C) log-probabilities of the answer

    @property
    def choices(self) -> Tensor:
        """(B, T) index of the module chosen at each step."""
        return self.gates.argmax(-1)

    @property
    def halt_step(self) -> Tensor:
        """(B,) the step at which the episode halted, -1 when it never did (hard or straight-through gates)."""
        halted = self.halt_prob > 0.5  # (B, T); exact 0/1 values in the forward pass of one-hot gates
        first = halted.float().argmax(-1)
        return torch.where(halted.any(-1), first, torch.full_like(first, -1))

    @property
    def prediction(self) -> Tensor:
        """(B,) the answer read when the episode halted, -1 when it never halted."""
        pred = self.log_probs.argmax(-1)
        return torch.where(self.halt_step >= 0, pred, torch.full_like(pred, -1))

    def loss(self, target: Tensor) -> Tensor:
        """Mean negative log-likelihood of ``target`` (B,) under the halting mixture."""
        return nn.functional.nll_loss(self.log_probs, target)


@dataclass
class RouteResult:
    """One item's hard-routed episode."""

    modules: tuple[str, ...]
    answer: Any  # int (argmax of a neural readout), str (text readout) or None when it never halted
    halted: bool
    history: History = ()


class GatedRouter(nn.Module):
    """A controller gating ``modules`` that share a workspace of ``slots`` × ``width``.

    ``controller_view`` lists the slots the controller reads (default: all). Modules always see the
    whole workspace; narrowing what the controller sees decides which cues its learned program can
    use (the addition study reads only the addend slot, docs/workspaces.md says why).
    ``max_steps`` bounds an episode; ``forward`` and ``run`` accept a different bound per call.
    """

    def __init__(
        self,
        modules: Sequence[WorkspaceModule],
        controller: Controller,
        *,
        slots: int,
        width: int,
        max_steps: int = 12,
        controller_view: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if len(modules) < 2:
            raise ValueError(f"a router needs at least two modules (one that halts), got {len(modules)}")
        strangers = [type(m).__name__ for m in modules if not isinstance(m, WorkspaceModule)]
        if strangers:
            raise TypeError(f"router modules must subclass WorkspaceModule, got {strangers}")
        names = [m.name for m in modules]
        if len(set(names)) != len(names):
            raise ValueError(f"module names must be unique, got {names}")
        halting = [i for i, m in enumerate(modules) if m.halts]
        if len(halting) != 1:
            raise ValueError(
                f"exactly one module must halt (the Output module), got {[names[i] for i in halting]}"
            )
        view = tuple(range(slots)) if controller_view is None else tuple(controller_view)
        if not view or any(not 0 <= s < slots for s in view) or len(set(view)) != len(view):
            raise ValueError(f"controller_view must list distinct slots in [0, {slots}), got {view}")
        if controller.n_modules != len(modules) or controller.workspace_size != len(view) * width:
            raise ValueError(
                f"controller sized for {controller.n_modules} modules and a workspace view of "
                f"{controller.workspace_size}, but the router has {len(modules)} modules and reads "
                f"{len(view)} slot(s) × {width} = {len(view) * width}"
            )
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.workers = nn.ModuleList(modules)  # registers parameters; `chain` keeps the static types
        self.chain: tuple[WorkspaceModule, ...] = tuple(modules)
        self.controller = controller
        self.slots, self.width, self.max_steps = slots, width, max_steps
        self.controller_view = view
        self.register_buffer("_view_index", torch.tensor(view), persistent=False)
        self.halt_index = halting[0]
        self.names = tuple(names)
        self.uses_text = any(m.uses_text for m in modules)

    @property
    def halt_module(self) -> WorkspaceModule:
        return self.chain[self.halt_index]

    def _start(self, stimulus: Any) -> tuple[WorkspaceState, Any, Tensor]:
        device = next(self.controller.parameters()).device
        state = WorkspaceState.empty(
            stimulus, self.slots, self.width, with_text=self.uses_text, device=device
        )
        batch = state.batch_size
        last_gate = torch.zeros(batch, len(self.workers), device=device)  # (B, M)
        return state, self.controller.initial_state(batch, device), last_gate

    def _steps(self, max_steps: int | None) -> int:
        steps = self.max_steps if max_steps is None else max_steps
        if steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {steps}")
        return steps

    def _observe(self, state: WorkspaceState) -> Tensor:
        """What the controller sees: its view's slots of the workspace, flattened (B, len(view) * D)."""
        return state.vector.index_select(1, self._view_index).flatten(1)

    def _check_proposal(self, module: nn.Module, before: WorkspaceState, after: WorkspaceState) -> None:
        if after.vector.shape != before.vector.shape:
            raise ValueError(
                f"module {getattr(module, 'name', module)!r} returned a workspace of shape "
                f"{tuple(after.vector.shape)}, expected {tuple(before.vector.shape)}"
            )

    def forward(
        self,
        stimulus: Any,
        mode: GateMode = "soft",
        *,
        tau: float = 1.0,
        straight_through: bool = True,
        timeout_credit: float = 0.1,
        max_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> RouterOutput:
        """Differentiable routing of a batch (neural modules whose readout is (B, C) log-probs)."""
        if self.uses_text:
            raise ValueError("forward() routes tensors only; use run() for routers with text modules")
        steps = self._steps(max_steps)
        state, ctrl_state, last_gate = self._start(stimulus)
        gates, halts, readouts = [], [], []
        not_halted = torch.ones(state.batch_size, device=state.vector.device)  # (B,)
        for _ in range(steps):
            logits, ctrl_state = self.controller(self._observe(state), last_gate, ctrl_state)
            g = gate(logits, mode, tau=tau, straight_through=straight_through, generator=generator)  # (B, M)
            readouts.append(self.halt_module.readout(state).exp())  # (B, C) answer if halting now
            halts.append(g[:, self.halt_index] * not_halted)  # (B,)
            not_halted = not_halted * (1 - g[:, self.halt_index])
            proposals = []
            for module in self.chain:
                proposal = module(state)
                self._check_proposal(module, state, proposal)
                proposals.append(proposal.vector)
            stacked = torch.stack(proposals, dim=1)  # (B, M, S, D)
            state = state.with_vector(torch.einsum("bm,bmsd->bsd", g, stacked))
            gates.append(g)
            last_gate = g
        halt_prob = torch.stack(halts, dim=1)  # (B, T)
        probs = torch.einsum("bt,btc->bc", halt_prob, torch.stack(readouts, dim=1))  # (B, C)
        # An episode that never halts is read out when time runs out, but only for a fraction of the
        # credit: a uniform guess instead made "never halt" a cheap local optimum, full credit made
        # "repeat Input forever" one. `prediction` scores it as no answer.
        final = self.halt_module.readout(state).exp()  # (B, C)
        probs = probs + timeout_credit * not_halted[:, None] * final
        return RouterOutput(
            gates=torch.stack(gates, dim=1),
            halt_prob=halt_prob,
            remainder=not_halted,
            log_probs=probs.clamp_min(1e-12).log(),
        )

    @torch.no_grad()
    def run(self, stimulus: Any, *, max_steps: int | None = None) -> list[RouteResult]:
        """Hard routing: each item goes only to the module it chose, until it halts or runs out of steps."""
        steps = self._steps(max_steps)
        batch = batch_size_of(stimulus)
        state, ctrl_state, last_gate = self._start(stimulus)
        device = state.vector.device
        active = torch.ones(batch, dtype=torch.bool, device=device)
        sequences: list[list[str]] = [[] for _ in range(batch)]
        answers: list[Any] = [None] * batch
        for _ in range(steps):
            if not bool(active.any()):
                break
            logits, ctrl_state = self.controller(self._observe(state), last_gate, ctrl_state)
            choice = logits.argmax(-1)  # (B,)
            next_state = state
            for index, module in enumerate(self.chain):
                rows = ((choice == index) & active).nonzero().flatten()
                if rows.numel() == 0:
                    continue
                part = state.take(rows)
                for row in rows.tolist():
                    sequences[row].append(self.names[index])
                if index == self.halt_index:
                    for row, answer in zip(rows.tolist(), _answers(module.readout(part))):
                        answers[row] = answer
                    active[rows] = False
                    continue
                proposal = module(part)
                self._check_proposal(module, part, proposal)
                next_state = next_state.put(rows, proposal)
            state = next_state
            last_gate = nn.functional.one_hot(choice, len(self.workers)).float()
        histories = state.history if state.history is not None else ((),) * batch
        return [
            RouteResult(tuple(sequences[i]), answers[i], not bool(active[i]), histories[i])
            for i in range(batch)
        ]


def _answers(readout: Any) -> list[Any]:
    """Per-item answers from a readout: argmax of (b, C) log-probs, or the strings themselves."""
    if isinstance(readout, Tensor):
        if readout.dim() != 2:
            raise ValueError(f"a neural readout must be (batch, classes), got {tuple(readout.shape)}")
        return [int(i) for i in readout.argmax(-1).tolist()]
    return list(readout)
