"""RowSampler draws from the warped softmax; StopOnStrings finishes rows independently."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_tokenizer

from reasonkit.backends.request import check_prompts, trim_at_stop
from reasonkit.models.sampling import RowSampler, StopOnStrings, row_generator, row_seed


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
ROWS = 4000


def sample_frequencies(temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    sampler = RowSampler([row_generator(7, j) for j in range(ROWS)], temperature, top_k, top_p)
    scores = sampler(torch.zeros((ROWS, 1), dtype=torch.long), LOGITS.expand(ROWS, -1).clone())
    assert torch.all((scores == 0).sum(-1) == 1)  # exactly one finite entry per row
    chosen = scores.argmax(-1)
    return torch.bincount(chosen, minlength=len(LOGITS)).double() / ROWS


@pytest.mark.parametrize("temperature", [0.7, 1.0, 2.0])
def test_samples_follow_the_tempered_softmax(temperature):
    expected = torch.softmax(LOGITS.double() / temperature, -1)
    assert torch.allclose(sample_frequencies(temperature), expected, atol=0.03)  # ~5 sigma at 4000 draws


def test_top_k_and_top_p_restrict_the_support():
    freq = sample_frequencies(1.0, top_k=2)
    assert freq[2:].sum() == 0
    assert torch.allclose(freq[:2], torch.softmax(LOGITS[:2].double(), -1), atol=0.03)
    probs = torch.softmax(LOGITS.double(), -1)  # 0.57, 0.21, 0.13, 0.08, 0.03
    freq = sample_frequencies(1.0, top_p=0.7)  # the smallest prefix reaching 0.7 is the top two
    assert freq[2:].sum() == 0
    assert torch.allclose(freq[:2], probs[:2] / probs[:2].sum(), atol=0.03)


def test_zero_probability_tokens_are_never_drawn():
    logits = torch.tensor([float("-inf"), 0.0, float("-inf"), 0.0, float("-inf")]).expand(ROWS, -1).clone()
    sampler = RowSampler([row_generator(j, 0) for j in range(ROWS)], 1.0, 0, 1.0)
    chosen = sampler(torch.zeros((ROWS, 1), dtype=torch.long), logits).argmax(-1)
    assert set(chosen.tolist()) == {1, 3}


def test_row_seeds_depend_only_on_seed_and_sample_index():
    assert row_seed(3, 0) == row_seed(3, 0) and row_seed(3, 0) != row_seed(3, 1) != row_seed(4, 1)
    assert 0 <= row_seed(-5, 2) < 2**63
    a = torch.rand(4, generator=row_generator(3, 1))
    assert torch.equal(a, torch.rand(4, generator=row_generator(3, 1)))
    torch.manual_seed(0)
    b = torch.rand(4, generator=row_generator(None, 0))
    torch.manual_seed(0)
    assert torch.equal(b, torch.rand(4, generator=row_generator(None, 0)))
    with pytest.raises(ValueError, match="temperature > 0"):
        RowSampler([], 0.0, 0, 1.0)


def test_stop_on_strings_marks_each_row_when_its_stop_appears(tokenizer):
    prompt = tokenizer("hello")["input_ids"]
    first = tokenizer(" The answer is 5.", add_special_tokens=False)["input_ids"]
    second = tokenizer(" step by step", add_special_tokens=False)["input_ids"]
    width = min(len(first), len(second))
    stopper = StopOnStrings(tokenizer, ["answer"], len(prompt), batch_size=2)
    flags = []
    for k in range(1, width + 1):
        ids = torch.tensor([prompt + first[:k], prompt + second[:k]])
        flags.append(stopper(ids, torch.zeros(2, 1)).tolist())
    done_at = next(k for k in range(1, width + 1) if "answer" in tokenizer.decode(first[:k]))
    assert stopper.stopped_at == [done_at, None]
    assert flags[done_at - 1] == [True, False] and flags[done_at - 2] == [False, False]


def test_trim_at_stop_and_prompt_checks():
    assert trim_at_stop("a STOP b END", ("END", "STOP")) == ("a ", True)
    assert trim_at_stop("nothing", ("x",)) == ("nothing", False)
    assert trim_at_stop("", ()) == ("", False)
    assert check_prompts(["a", [{"role": "user", "content": "b"}]])[1][0]["content"] == "b"
    for bad in ["a", [3], [[]], [[{"role": "user"}]], [[{"role": 1, "content": "x"}]]]:
        with pytest.raises(ValueError):
            check_prompts(bad)
