"""The most important HRPO test: the log-probs recorded while decoding a mixed rollout equal a
teacher-forced recomputation from the stored ids, hybrid inputs, mask and positions (float32, 1e-5).

It catches a missing attention mask or positions in the loss forward (the reference's accident), an
off-by-one alignment of h, and a τ mismatch. Tiny random Llama, Qwen2 and GatedLM (GLA + gated
attention: the recurrent decode against the parallel teacher-forced scan), a left-padded batch.
"""

from __future__ import annotations

import pytest
import torch
from hrpo.hrpo_helpers import DELIMITER, TAU, TEXTS, TOP_K, policy_for, roll

from reasonkit.hrpo.build import decode_hooks
from reasonkit.hrpo.delimiter import thinking_flags
from reasonkit.hrpo.rollout import rollout_generator, sample


@pytest.mark.parametrize("family", ["llama", "qwen2", "gated_lm"])
@pytest.mark.parametrize("mode", ["hrpo", "grpo", "raw-hidden", "fixed-interp"])
def test_recorded_logprobs_equal_teacher_forced_recomputation(tokenizer, family, mode):
    policy = policy_for(family, tokenizer, mode)
    rollout = roll(policy, tokenizer)
    assert len(set(rollout.attention_mask.sum(1).tolist())) > 1  # a left-padded batch
    with torch.no_grad():
        logprobs, _ = policy(rollout)
    mask = rollout.completion_mask
    assert int(mask.sum()) > 30
    torch.testing.assert_close(logprobs[mask], rollout.logprobs[mask], rtol=0, atol=1e-5)
    if mode != "grpo":
        assert rollout.thinking.any() and float(rollout.shares.min()) > 0.1


@pytest.mark.parametrize("family", ["llama", "gated_lm"])
def test_the_comparison_fails_when_h_is_misaligned_or_the_mask_is_dropped(tokenizer, family):
    policy = policy_for(family, tokenizer)
    rollout = roll(policy, tokenizer)
    mask = rollout.completion_mask
    shifted = rollout.to(torch.device("cpu"))
    assert shifted.hidden is not None
    shifted.hidden = torch.roll(shifted.hidden, 1, dims=1)  # h one column late
    no_mask = roll(policy, tokenizer)
    no_mask.attention_mask = torch.ones_like(no_mask.attention_mask)  # the reference's accident
    no_mask.position_ids = torch.arange(no_mask.input_ids.shape[1]).expand_as(no_mask.input_ids)
    with torch.no_grad():
        for broken in (shifted, no_mask):
            logprobs, _ = policy(broken)
            assert float((logprobs[mask] - rollout.logprobs[mask]).abs().max()) > 1e-3


def test_thinking_columns_follow_the_delimiter_rule(tokenizer):
    policy = policy_for("llama", tokenizer)
    rollout = roll(policy, tokenizer, max_new_tokens=40)
    W = rollout.prompt_width
    for r, tokens in enumerate(rollout.completions):
        expected = thinking_flags(tokenizer, DELIMITER, tokens)
        expected[-1] = False  # the last token is never fed
        assert rollout.thinking[r, W : W + len(tokens)].tolist() == expected
        assert not rollout.thinking[r, :W].any() and not rollout.thinking[r, W + len(tokens) :].any()


def test_a_fixed_seed_rollout_is_reproducible_and_independent_of_the_batch(tokenizer):
    policy = policy_for("gated_lm", tokenizer)
    first, again = roll(policy, tokenizer), roll(policy, tokenizer)
    assert first.completions == again.completions
    card = {"mode": "hrpo", "temperature": TAU, "top_k": TOP_K, "delimiter": DELIMITER}
    hooks = decode_hooks(policy.mixer, tokenizer, card, record=True)
    alone = sample(policy.lm, hooks, [tokenizer(TEXTS[1])["input_ids"]], [rollout_generator(0, 0, 1, 0)],
                   max_new_tokens=24, top_k=TOP_K, eos_ids=[2], stop=[], pad_id=0)  # fmt: skip
    assert alone.completions[0] == first.completions[1]
