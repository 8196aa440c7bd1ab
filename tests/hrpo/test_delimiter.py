"""The thinking mask flips exactly after the answer delimiter, also when the delimiter spans tokens."""

from __future__ import annotations

import pytest
from tiny_models import build_tokenizer

from reasonkit.hrpo.delimiter import DelimiterDetector, count_delimiters, thinking_flags
from reasonkit.models.builtin.tokenizer import build_tokenizer as builtin_tokenizer


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer()


def _first_token_completing(tokenizer, ids, delimiter):
    return next(
        k for k in range(len(ids)) if delimiter in tokenizer.decode(ids[: k + 1], skip_special_tokens=True)
    )


@pytest.mark.parametrize("delimiter", ["The answer is", "answer", "####", "is 5"])
def test_flags_flip_at_the_token_that_completes_the_delimiter(bpe, delimiter):
    text = "Let us think step by step. 2 + 3 = 5. #### The answer is 5. The answer is 6."
    ids = bpe(text, add_special_tokens=False)["input_ids"]
    flags = thinking_flags(bpe, delimiter, ids)
    k = _first_token_completing(bpe, ids, delimiter)
    assert flags == [True] * k + [False] * (len(ids) - k)


def test_a_delimiter_split_across_tokens(bpe):
    ids = bpe("2 + 3 = 5. The answer is 5.", add_special_tokens=False)["input_ids"]
    delimiter = "answer is"
    pieces = [bpe.decode([t]) for t in ids]
    k = _first_token_completing(bpe, ids, delimiter)
    assert delimiter not in pieces[k]  # really split: no single token holds it
    flags = thinking_flags(bpe, delimiter, ids)
    assert flags.index(False) == k and all(not f for f in flags[k:]) and all(flags[:k])


def test_character_level_tokenizer_of_the_builtin_model():
    tok = builtin_tokenizer()
    text = "3+2=5|48-7*5;7*5=35|48-35;48-35=13|13;The answer is 13"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    flags = thinking_flags(tok, "The answer is", ids)
    assert flags.index(False) == text.index("The answer is") + len("The answer is") - 1


def test_batched_rows_stop_independently_and_finished_rows_are_skipped(bpe):
    rows = [
        bpe(t, add_special_tokens=False)["input_ids"] for t in ("The answer is 5", "no answer here at all")
    ]
    detector = DelimiterDetector(bpe, "answer is", 2)
    width = max(map(len, rows))
    for k in range(width):
        tokens = [r[k] if k < len(r) else 0 for r in rows]
        detector.update(tokens, active=[k < len(r) for r in rows])
    assert detector.found_at[0] == _first_token_completing(bpe, rows[0], "answer is")
    assert detector.found_at[1] is None
    assert detector.generated[0] == rows[0] and detector.generated[1] == rows[1]


def test_count_and_empty_delimiter(bpe):
    assert count_delimiters("#### 5 #### 6", "####") == 2
    with pytest.raises(ValueError, match="non-empty"):
        DelimiterDetector(bpe, "", 1)
