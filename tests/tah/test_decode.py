"""Think-at-Hard decoding: batched decode == the teacher-forced forward under the same router, per-row
deeper caches, per-token depths in completions and traces, and the ``tah:`` backend spec."""

from __future__ import annotations

import pytest
import torch
from tah_helpers import FAMILIES, tah_model

from reasonkit.models.whitebox import decode
from reasonkit.tah.hooks import TaHHooks
from reasonkit.tah.passes import dense_logits, token_depths

PROMPTS = [[5, 9, 11, 4, 7], [7, 8], [9, 10, 11, 12]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def firing_model(family: str, **config):
    """A random decider whose threshold is set so that some tokens iterate and some do not."""
    model = tah_model(family, **config)
    ids = torch.tensor([PROMPTS[0] * 3])
    with torch.no_grad():
        out = model.lm.forward(model.lm.embed(ids), hidden_states=model.decider_layers)
        p = torch.sigmoid(model.decider(out.hidden_states, model.lm.logits(out.hidden))).flatten()
    model.config.threshold = float(p.median())
    return model


def teacher_forced(model, prompt: list[int], generated: list[int]):
    """Logits and depths of the TaH forward over prompt + generated, where the prompt's last position and
    every generated one may iterate (what decoding does)."""
    ids = torch.tensor([prompt + generated])
    eligible = torch.zeros_like(ids, dtype=torch.bool)
    eligible[0, len(prompt) - 1 :] = True
    with torch.no_grad():
        passes = model.run(ids, None, eligible)
    return dense_logits(passes, *ids.shape)[0], token_depths(passes, *ids.shape)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_decode_equals_the_teacher_forced_forward_row_by_row(family):
    model = firing_model(family)
    hooks = TaHHooks(model)
    rows = decode(model.lm, PROMPTS, max_new_tokens=8, hooks=hooks)
    iterated = 0
    for prompt, row in zip(PROMPTS, rows):
        logits, depths = teacher_forced(model, prompt, row.tokens)
        positions = range(len(prompt) - 1, len(prompt) - 1 + len(row.tokens))
        assert [int(logits[p].argmax()) for p in positions] == row.tokens
        assert row.meta["tah"]["depths"] == [int(depths[p]) for p in positions]
        iterated += row.meta["tah"]["iterated"]
        # a row decoded alone gives the same tokens and depths as in the batch
        assert decode(model.lm, [prompt], max_new_tokens=8, hooks=TaHHooks(model))[0] == row
    assert 0 < iterated < sum(len(r.tokens) for r in rows)  # the test exercises both kinds of token


def test_each_row_s_second_pass_cache_holds_only_its_own_iterated_tokens():
    model = firing_model("llama")
    seen = {}

    class Spy(TaHHooks):
        def refine(self, lm, step):
            logits = super().refine(lm, step)
            seen["cache"] = step.output.cache
            return logits

    rows = decode(model.lm, PROMPTS, max_new_tokens=6, hooks=Spy(model))
    counts = seen["cache"].row_counts(1).tolist()
    # the last chosen token's pass is in the cache too; EOS-free rows run all 6 steps
    assert counts == [row.meta["tah"]["iterated"] for row in rows]
    assert len(set(counts)) > 1  # rows differ, and none grew with another


@pytest.mark.parametrize("family", ["qwen2", "gated"])
def test_never_iterating_decodes_exactly_like_the_plain_model(family):
    model = tah_model(family, route="never", dtype=torch.float32)
    plain = decode(model.lm, PROMPTS, max_new_tokens=6)
    tah = decode(model.lm, PROMPTS, max_new_tokens=6, hooks=TaHHooks(model))
    assert [r.tokens for r in tah] == [r.tokens for r in plain]
    assert all(r.meta["tah"]["depths"] == [1] * len(r.tokens) for r in tah)


def test_always_iterating_decodes_like_the_teacher_forced_always_forward():
    model = tah_model("gated", route="always", eligible="all")
    rows = decode(model.lm, PROMPTS[:2], max_new_tokens=5, hooks=TaHHooks(model))
    for prompt, row in zip(PROMPTS, rows):
        ids = torch.tensor([prompt + row.tokens])
        with torch.no_grad():
            logits = dense_logits(model.run(ids, None, torch.ones_like(ids, dtype=torch.bool)), *ids.shape)[0]
        assert [int(logits[p].argmax()) for p in range(len(prompt) - 1, ids.shape[1] - 1)] == row.tokens
        assert row.meta["tah"]["depths"] == [2] * len(row.tokens)
