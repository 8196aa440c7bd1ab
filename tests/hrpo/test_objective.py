"""HRPO's loss algebra against hand-computed values (deep notes §2.2, §2.8)."""

from __future__ import annotations

import math

import pytest
import torch

from reasonkit.hrpo.objective import group_advantages, kl3, policy_loss


def test_identical_rewards_in_a_group_give_zero_advantage():
    rewards = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1])
    advantages = group_advantages(rewards, 4)
    assert advantages[:8].abs().max() == 0
    std = math.sqrt(4 * 0.25 / 3)  # Bessel-corrected, as TRL
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4)
    torch.testing.assert_close(advantages[8:], expected)


def test_group_size_must_divide_and_be_at_least_two():
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(torch.zeros(4), 1)


def test_kl3_is_non_negative_and_zero_when_policy_equals_reference():
    gen = torch.Generator().manual_seed(0)
    a, b = -torch.rand(1000, generator=gen) * 5, -torch.rand(1000, generator=gen) * 5
    assert float(kl3(a, b).min()) >= 0
    assert float(kl3(a, a).abs().max()) == 0
    torch.testing.assert_close(
        kl3(torch.tensor([-1.0]), torch.tensor([-2.0])), torch.tensor([math.exp(-1) + 1 - 1])
    )


def test_zero_advantage_and_zero_beta_give_zero_loss_and_gradient():
    logprobs = (-torch.rand(3, 7)).requires_grad_()
    loss, _ = policy_loss(
        logprobs, -torch.rand(3, 7), torch.zeros(3), torch.ones(3, 7, dtype=torch.bool), 0.0
    )
    loss.backward()
    assert loss.item() == 0.0 and float(logprobs.grad.abs().max()) == 0.0


def test_loss_value_and_gradient_by_hand():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-0.5, -1.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    advantages, beta = torch.tensor([2.0, -1.0]), 0.5
    loss, kl = policy_loss(logprobs, ref, advantages, mask, beta)
    k = lambda lp, r: math.exp(r - lp) - (r - lp) - 1  # noqa: E731
    row0 = sum(-(2.0 - beta * k(lp, r)) for lp, r in [(-1, -1.5), (-2, -2), (-3, -1)]) / 3
    row1 = sum(-(-1.0 - beta * k(lp, r)) for lp, r in [(-0.5, -0.5), (-0.5, -1.0)]) / 2
    assert loss.item() == pytest.approx((row0 + row1) / 2)
    loss.backward()
    # d/dℓ of -(exp(ℓ - sg ℓ) A) is -A; of β·KL₃ is β(1 - exp(ℓ_ref - ℓ)); each row's tokens share 1/n, rows 1/2
    expected = torch.zeros(2, 3)
    for r, n in ((0, 3), (1, 2)):
        for t in range(n):
            lp, rf = float(logprobs[r, t]), float(ref[r, t])
            expected[r, t] = (-float(advantages[r]) + beta * (1 - math.exp(rf - lp))) / n / 2
    torch.testing.assert_close(logprobs.grad, expected)
    assert float(kl[1]) == pytest.approx((k(-0.5, -0.5) + k(-0.5, -1.0)) / 2)
