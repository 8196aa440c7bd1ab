"""The built-in model: its tokenizer round-trips everything the arith task writes, and the shipped
checkpoint loads offline and solves easy problems at temperature 0."""

from __future__ import annotations

import json

import pytest

from reasonkit.models.builtin.tokenizer import (
    CHARACTERS,
    SPECIAL_TOKENS,
    build_tokenizer,
    control_tokens,
    save_tokenizer,
)
from reasonkit.packs import CALLS
from reasonkit.tasks.arith import DEFAULT_MIXTURE, training_examples


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def task_texts() -> list[str]:
    """Prompts and targets of every block task (40 pairs each, validation split)."""
    texts = []
    for call in CALLS:
        for prompt, target in training_examples("validation", n=40, seed=3, mixture={call: 1.0}):
            texts += [str(prompt), target, str(prompt) + target]
    return texts


def test_every_call_is_in_the_training_mixture():
    assert set(DEFAULT_MIXTURE) == set(CALLS)


def test_round_trip_of_every_prompt_and_target(tokenizer, task_texts):
    unk = tokenizer.unk_token_id
    for text in task_texts:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id  # what HFBackend feeds (add_special_tokens=True)
        assert unk not in ids, text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_every_character_the_task_emits_is_one_token(tokenizer, task_texts):
    for char in sorted(set("".join(task_texts)) | set(CHARACTERS)):
        ids = tokenizer(char, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tokenizer.unk_token_id, repr(char)
        assert tokenizer.decode(ids) == char


def test_control_tokens_are_single_non_special_tokens(tokenizer):
    ids = tokenizer("<q>12*3<refine>", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<q>", "1", "2", "*", "3", "<refine>"]
    for token in control_tokens():
        (one,) = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode([one], skip_special_tokens=True) == token  # kept when decoding outputs
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == list(SPECIAL_TOKENS)
    assert (
        tokenizer("<q", add_special_tokens=False)["input_ids"]
        == tokenizer("<", add_special_tokens=False)["input_ids"]
        + tokenizer("q", add_special_tokens=False)["input_ids"]
    )


def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path, tokenizer, task_texts):
    from transformers import AutoTokenizer

    assert save_tokenizer(tmp_path) == ["tokenizer.json", "tokenizer_config.json"]
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    for text in task_texts[:60]:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert len(loaded) == len(tokenizer) == len(SPECIAL_TOKENS) + len(control_tokens()) + len(CHARACTERS)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"] == "WordLevel"
