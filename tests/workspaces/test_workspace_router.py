"""The gated router on the addition modules: shapes, halting, a hand-set counting controller, bad input."""

import math

import pytest
import torch

from reasonkit.workspaces.gating import Controller
from reasonkit.workspaces.number_modules import InputModule, Readout, ShiftIncrement, number_code
from reasonkit.workspaces.router import GatedRouter, WorkspaceModule
from reasonkit.workspaces.state import WorkspaceState

N = 40  # number line 0..39
INPUT, INCREMENT, OUTPUT = 0, 1, 2


def counting_controller(delta: float = 0.05, k: float = 1000.0) -> Controller:
    """An LSTM controller with hand-set weights that reads b from slot 1 and counts to it.

    The cell state grows by ``delta`` per step (input/forget/output gates saturated open, candidate
    tanh = delta), so h_t = tanh(delta * (t + 1)). Step 0 (empty workspace) picks Input; afterwards
    Output wins once h_t exceeds tanh(delta * (b + 1.5)), i.e. after exactly b increments.
    """
    controller = Controller(workspace_size=N, n_modules=3, hidden=1, cell="lstm")
    with torch.no_grad():
        for p in controller.parameters():
            p.zero_()
        controller.cell.bias_ih.copy_(torch.tensor([20.0, 20.0, math.atanh(delta), 20.0]))  # i, f, g, o
        w, b = controller.head.weight, controller.head.bias  # columns: [h (1), slot 1 (N), last gate (3)]
        big = 2 * k
        b[INPUT] = big
        w[INPUT, 1 : 1 + N] = -2 * big  # any addend written -> never Input again
        w[OUTPUT, 0] = k
        thresholds = torch.tanh(delta * (torch.arange(N) + 1.5))
        w[OUTPUT, 1 : 1 + N] = -k * thresholds
    return controller


def addition_router(controller: Controller, view=(1,), max_steps: int = 22) -> GatedRouter:
    modules = [InputModule(), ShiftIncrement(slot=0), Readout(slot=0)]
    return GatedRouter(modules, controller, slots=2, width=N, max_steps=max_steps, controller_view=view)


def all_pairs(limit: int) -> torch.Tensor:
    return torch.cartesian_prod(torch.arange(limit), torch.arange(limit))  # (P, 2)


def test_hand_set_controller_executes_input_increments_output():
    router = addition_router(counting_controller())
    pairs = all_pairs(20)  # includes both extrapolation axes of the study
    stimulus = number_code(pairs, N)  # (P, 2, N)
    results = router.run(stimulus)
    for (a, b), result in zip(pairs.tolist(), results):
        assert result.modules == ("input",) + ("increment",) * b + ("output",), (a, b)
        assert result.halted and result.answer == a + b
    # The differentiable path with hard gates takes the same decisions.
    out = router(stimulus, "hard")
    assert torch.equal(out.prediction, pairs.sum(-1))
    assert torch.equal(out.halt_step, pairs[:, 1] + 1)
    expected = torch.full((len(pairs), 22), INCREMENT)
    expected[:, 0] = INPUT
    steps = torch.arange(22)
    expected[steps[None] > pairs[:, 1:2]] = OUTPUT  # after b increments the controller outputs
    assert torch.equal(out.choices, expected)


def test_forward_shapes_and_halting_mixture_against_a_loop():
    torch.manual_seed(0)
    router = addition_router(Controller(2 * N, 3, hidden=8), view=(0, 1), max_steps=6)
    stimulus = number_code(all_pairs(5)[:7], N)
    out = router(
        stimulus, "soft", tau=1.0, straight_through=False, generator=torch.Generator().manual_seed(0)
    )
    assert out.gates.shape == (7, 6, 3) and out.halt_prob.shape == (7, 6)
    assert out.remainder.shape == (7,) and out.log_probs.shape == (7, N)
    # Reference: q_t = g_t[out] * prod_{s<t} (1 - g_s[out]); remainder = prod_t (1 - g_t[out]).
    g_out = out.gates[..., OUTPUT].detach()
    survive = torch.ones(7)
    for t in range(6):
        torch.testing.assert_close(out.halt_prob[:, t].detach(), g_out[:, t] * survive)
        survive = survive * (1 - g_out[:, t])
    torch.testing.assert_close(out.remainder.detach(), survive)
    torch.testing.assert_close(out.halt_prob.detach().sum(-1) + survive, torch.ones(7))


def test_straight_through_training_step_is_one_hot_and_reaches_the_controller():
    torch.manual_seed(0)
    router = addition_router(Controller(N, 3, hidden=8), max_steps=6)
    pairs = all_pairs(4)
    out = router(number_code(pairs, N), "soft", tau=0.5, generator=torch.Generator().manual_seed(3))
    assert set(out.gates.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.gates.detach().sum(-1), torch.ones(16, 6))
    out.loss(pairs.sum(-1)).backward()
    grads = [p.grad for p in router.controller.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_never_halting_scores_no_answer():
    controller = counting_controller()
    router = addition_router(controller, max_steps=3)  # too few steps for b >= 2
    pairs = torch.tensor([[1, 0], [1, 5]])
    out = router(number_code(pairs, N), "hard")
    assert out.prediction.tolist() == [1, -1]
    results = router.run(number_code(pairs, N))
    assert results[1].halted is False and results[1].answer is None
    assert results[1].modules == ("input", "increment", "increment")


class WrongShape(WorkspaceModule):
    name = "broken"

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        return state.with_vector(state.vector[:, :1])


def test_router_rejects_bad_construction_and_bad_modules():
    controller = Controller(N, 3)
    with pytest.raises(ValueError, match="exactly one module must halt"):
        GatedRouter([InputModule(), ShiftIncrement(), ShiftIncrement(name="inc2")], controller, slots=2, width=N,
                    controller_view=(1,))  # fmt: skip
    with pytest.raises(ValueError, match="unique"):
        GatedRouter([InputModule(), ShiftIncrement(name="input"), Readout()], controller, slots=2, width=N,
                    controller_view=(1,))  # fmt: skip
    with pytest.raises(ValueError, match="controller sized for"):
        GatedRouter(
            [InputModule(), ShiftIncrement(), Readout()], controller, slots=2, width=N
        )  # view of 2 slots
    with pytest.raises(ValueError, match="controller_view"):
        GatedRouter(
            [InputModule(), ShiftIncrement(), Readout()], controller, slots=2, width=N, controller_view=(2,)
        )
    with pytest.raises(TypeError, match="subclass WorkspaceModule"):
        GatedRouter([InputModule(), torch.nn.Identity(), Readout()], controller, slots=2, width=N)  # type: ignore[list-item]
    router = GatedRouter(
        [WrongShape(), ShiftIncrement(), Readout()], controller, slots=2, width=N, controller_view=(1,)
    )
    with pytest.raises(ValueError, match="'broken' returned a workspace of shape"):
        router(number_code(all_pairs(2), N), "hard")


def test_router_rejects_bad_stimulus():
    router = addition_router(counting_controller())
    with pytest.raises(ValueError, match=r"produced \(4, 2, 12\), expected \(4, 2, 40\)"):
        router(number_code(all_pairs(2), 12), "hard")  # codes on the wrong number line
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        router(number_code(all_pairs(2), N), "hard", max_steps=0)
    with pytest.raises(ValueError, match="batch dimension"):
        router(torch.tensor(3.0), "hard")
    with pytest.raises(ValueError, match=r"number line"):
        number_code(torch.tensor([[3, 45]]), N)
