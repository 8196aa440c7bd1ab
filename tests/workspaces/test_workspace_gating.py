"""The gate (soft straight-through Gumbel-softmax in training, hard argmax at inference) and the controller."""

import pytest
import torch

from reasonkit.workspaces.gating import Controller, gate, gumbel_noise, reactive_controller


def test_hard_gate_is_the_argmax_one_hot():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    g = gate(logits, "hard")
    assert g.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_soft_gate_is_one_hot_forward_with_the_relaxed_gradient():
    torch.manual_seed(0)
    logits = torch.randn(64, 4, requires_grad=True)
    weights = torch.randn(64, 4)
    generator = torch.Generator().manual_seed(1)
    g = gate(logits, "soft", tau=0.7, generator=generator)
    assert g.shape == (64, 4)
    # Forward: exactly one module per item.
    assert torch.equal(g.detach().sum(-1), torch.ones(64))
    assert set(g.detach().unique().tolist()) <= {0.0, 1.0}
    (g * weights).sum().backward()
    # Backward: the gradient of softmax((logits + same noise) / tau), i.e. straight-through.
    noise = gumbel_noise(logits.shape, generator=torch.Generator().manual_seed(1))
    ref_logits = logits.detach().clone().requires_grad_(True)
    (torch.softmax((ref_logits + noise) / 0.7, -1) * weights).sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    # And the hard choice is the argmax of the noisy logits.
    assert torch.equal(g.detach().argmax(-1), (logits.detach() + noise).argmax(-1))


def test_relaxed_gate_without_straight_through_is_a_distribution():
    logits = torch.zeros(8, 3)
    g = gate(logits, "soft", tau=1.0, straight_through=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(g.sum(-1), torch.ones(8))
    assert (g > 0).all() and (g < 1).all()


def test_low_temperature_soft_gate_follows_the_logits():
    logits = torch.tensor([[0.0, 8.0, 0.0]]).repeat(200, 1)
    g = gate(logits, "soft", tau=0.1, generator=torch.Generator().manual_seed(0))
    assert g.argmax(-1).eq(1).float().mean() > 0.95


def test_gate_rejects_bad_input():
    with pytest.raises(ValueError, match="gate mode"):
        gate(torch.zeros(2, 3), "sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(batch, modules\)"):
        gate(torch.zeros(3), "hard")
    with pytest.raises(ValueError, match="tau must be > 0"):
        gate(torch.zeros(2, 3), "soft", tau=0.0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_controller_shapes(cell):
    controller = Controller(workspace_size=10, n_modules=3, hidden=8, cell=cell)
    state = controller.initial_state(5)
    logits, new_state = controller(torch.randn(5, 10), torch.zeros(5, 3), state)
    assert logits.shape == (5, 3)
    assert len(new_state) == (2 if cell == "lstm" else 1) and new_state[0].shape == (5, 8)


def test_controller_rejects_bad_input():
    controller = Controller(workspace_size=10, n_modules=3)
    with pytest.raises(ValueError, match=r"\(batch, 10\)"):
        controller(torch.randn(5, 11), torch.zeros(5, 3), controller.initial_state(5))
    with pytest.raises(ValueError, match="'lstm' or 'gru'"):
        Controller(10, 3, cell="rnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_modules >= 2"):
        Controller(10, 1)


def test_reactive_controller_maps_features_to_modules():
    controller = reactive_controller(workspace_size=4, n_modules=3, rules=[(1, 2), (3, 0)], default=1)
    features = torch.eye(4)  # one feature active per row
    logits, _ = controller(features, torch.zeros(4, 3), controller.initial_state(4))
    # feature 0 and 2 have no rule -> the default module 1
    assert logits.argmax(-1).tolist() == [1, 2, 1, 0]
    with pytest.raises(ValueError, match="outside the workspace"):
        reactive_controller(4, 3, rules=[(4, 0)], default=1)
    with pytest.raises(ValueError, match="outside the 3 modules"):
        reactive_controller(4, 3, rules=[(0, 3)], default=1)
