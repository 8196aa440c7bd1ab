"""PathScorer on real models: a left-padded batch scores each row as it would alone, on a tiny random
Llama and a tiny GatedLM; budgets follow the default path; the table spares repeated decodes."""

from __future__ import annotations

import pytest
import torch
from models.gated_lm_helpers import make_model
from tiny_models import CHAT_TEMPLATE, build_model, build_tokenizer

from reasonkit.backends.hf import HFBackend
from reasonkit.backends.loading import BUILTIN_DIR
from reasonkit.cola.scoring import PathScorer
from reasonkit.cola.table import RewardTable

PATHS = [(0, 1, 2, 3), (0, 0, 1, 2, 3), (1, 3), (0, 1, 2, 2, 3, 3)]  # the default path first


def tiny_llama_backend() -> HFBackend:
    tokenizer = build_tokenizer(CHAT_TEMPLATE)
    return HFBackend(build_model(tokenizer, "llama", layers=4), tokenizer, name="tiny-llama", threads=1)


def tiny_gated_backend() -> HFBackend:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BUILTIN_DIR)  # the built-in model's character tokenizer
    model = make_model(["gla", "attn", "gla", "attn"], dtype=torch.float32, vocab_size=len(tokenizer))
    return HFBackend(model, tokenizer, name="tiny-gated", prompt_pack="compact", threads=1)


@pytest.fixture(scope="module", params=["llama", "gated_lm"])
def tiny_backend(request):
    return tiny_llama_backend() if request.param == "llama" else tiny_gated_backend()


def test_a_left_padded_batch_scores_each_row_as_alone(tiny_backend, arith_problems):
    problems = [arith_problems[0], arith_problems[4], arith_problems[7]]  # 1, 5, 8 operations: unlike lengths
    batched = PathScorer(tiny_backend, problems, max_new_tokens=8)
    assert len({len(p) for p in batched.prompts}) > 1
    rows = list(range(len(problems)))
    for path in PATHS:
        together = batched.score(path, rows)
        for r in rows:
            alone = PathScorer(tiny_backend, problems, max_new_tokens=8, table=RewardTable())
            alone.score(alone.default_path, [r])
            assert alone.score(path, [r]) == [together[r]], (path, r)
    assert batched.calls == len(PATHS)  # one call per path, every row in it: path-major


def test_budgets_follow_the_default_path_and_the_table_spares_decodes(builtin, arith_problems):
    scorer = PathScorer(builtin, arith_problems[:3], call="direct", budget_factor=1.0)
    default = scorer.score(scorer.default_path, [0, 1, 2])
    assert all(o.finish == "stop" for o in default)
    assert [scorer.budget(r) for r in range(3)] == [o.tokens for o in default]
    skipped = scorer.score((0, 1, 2, 3, 4, 5, 6), [0, 1, 2])
    assert all(o.tokens <= d.tokens for o, d in zip(skipped, default))
    calls = scorer.calls
    assert scorer.score((0, 1, 2, 3, 4, 5, 6), [2, 0]) == [skipped[2], skipped[0]]
    assert scorer.calls == calls


def test_a_path_needs_the_default_outcome_first_and_gets_it(builtin, arith_problems):
    scorer = PathScorer(builtin, arith_problems[:2], call="direct")
    scorer.score((0, 2, 3, 4, 5, 6, 7), [1])
    assert scorer.cached(1, scorer.default_path) is not None and scorer.calls == 2


def test_pass_at_k_samples_are_seeded(builtin, arith_problems):
    scorer = PathScorer(builtin, arith_problems[4:6], call="direct")
    first = scorer.sample([0, 1], 3, temperature=1.0, seed=5)
    again = scorer.sample([0, 1], 3, temperature=1.0, seed=5)
    assert first == again and len(first) == 2 and len(first[0]) == 3


def test_bad_scorer_input_is_refused(builtin, arith_problems):
    from reasonkit.backends.loading import load_backend
    from reasonkit.types import Problem

    with pytest.raises(ValueError, match="call must be one of"):
        PathScorer(builtin, arith_problems[:1], call="answer")
    with pytest.raises(ValueError, match="plain model"):
        PathScorer(load_backend("layers:0-6@builtin"), arith_problems[:1])
    with pytest.raises(ValueError, match="gold answer"):
        PathScorer(builtin, [Problem(id="x", question="1+1", answer="", kind="arith")])
