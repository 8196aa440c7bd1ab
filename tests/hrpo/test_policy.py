"""Gradient flow of the loss forward and the KL reference (deep notes §2.7 items 6 and 10, §2.8)."""

from __future__ import annotations

import pytest
import torch
from hrpo.hrpo_helpers import policy_for, roll

from reasonkit.hrpo.objective import policy_loss
from reasonkit.hrpo.policy import token_logprobs


def loss_of(policy, rollout, two_pass: bool):
    logprobs, _ = policy(rollout, two_pass)
    advantages = torch.linspace(-1.0, 1.0, len(rollout.completions))
    loss, _ = policy_loss(logprobs, rollout.logprobs, advantages, rollout.completion_mask, 0.005)
    return loss


def grads(policy) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["llama", "gated_lm"])
def test_default_mode_trains_gates_and_lambda_but_sends_no_gradient_to_h(tokenizer, family):
    policy = policy_for(family, tokenizer)
    rollout = roll(policy, tokenizer)
    rollout.hidden.requires_grad_(True)
    loss_of(policy, rollout, two_pass=False).backward()
    mixer = policy.mixer
    for p in (mixer.gate_r.weight, mixer.gate_i.weight, mixer.Lambda):
        assert p.grad is not None and float(p.grad.abs().max()) > 0
    assert rollout.hidden.grad is None
    lora = [p for n, p in policy.model.named_parameters() if "lora_" in n]
    assert all(p.grad is not None for p in lora)
    base = [p for n, p in policy.model.named_parameters() if "lora_" not in n]
    assert all(p.grad is None for p in base)  # the base model stays frozen


@pytest.mark.parametrize("family", ["llama", "gated_lm"])
def test_two_pass_gives_the_same_loss_and_a_different_gradient(tokenizer, family):
    policy = policy_for(family, tokenizer)
    rollout = roll(policy, tokenizer)
    one = loss_of(policy, rollout, two_pass=False)
    one.backward()
    first = grads(policy)
    policy.zero_grad(set_to_none=True)
    two = loss_of(policy, rollout, two_pass=True)
    two.backward()
    second = grads(policy)
    assert float(two) == pytest.approx(float(one), abs=1e-5)  # on-policy: the recomputed h is the stored h
    assert first.keys() == second.keys()
    gaps = [float((first[n] - second[n]).abs().max() / (first[n].abs().max() + 1e-12)) for n in first]
    assert max(gaps) > 1e-2  # the pathwise term through h


def test_reference_is_the_base_model_on_token_ids(tokenizer):
    policy = policy_for("llama", tokenizer)
    rollout = roll(policy, tokenizer)
    reference = policy.reference_logprobs(rollout)
    with torch.no_grad():
        with policy.model.disable_adapter():
            base = policy.model.get_base_model()(
                input_ids=rollout.input_ids,
                attention_mask=rollout.attention_mask,
                position_ids=rollout.position_ids,
            ).logits
        adapted, _ = policy(rollout)
    expected = token_logprobs(base, rollout.input_ids, policy.temperature)
    mask = rollout.completion_mask
    torch.testing.assert_close(reference[mask], expected[mask], rtol=0, atol=1e-5)
    assert float((adapted[mask] - reference[mask]).abs().max()) > 1e-2  # the adapter and mixing were off
