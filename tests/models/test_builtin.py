"""The built-in model: its tokenizer round-trips everything the arith task writes, and the shipped
checkpoint loads offline and solves easy problems at temperature 0."""

from __future__ import annotations

import json
import os

import pytest

from reasonkit.models.builtin.tokenizer import (
    CHARACTERS,
    SPECIAL_TOKENS,
    build_tokenizer,
    control_tokens,
    save_tokenizer,
)
from reasonkit.tasks.arith import DEFAULT_MIXTURE, training_examples
from reasonkit.tasks.arith.training import TASKS


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def task_texts() -> list[str]:
    """Prompts and targets of every block task (40 pairs each, validation split)."""
    texts = []
    for call in TASKS:
        for prompt, target in training_examples("validation", n=40, seed=3, mixture={call: 1.0}):
            texts += [str(prompt), target, str(prompt) + target]
    return texts


def test_every_call_is_in_the_training_mixture():
    from reasonkit.packs import CALLS, OPTIONAL_CALLS

    assert set(DEFAULT_MIXTURE) == set(TASKS) == set(CALLS) - set(OPTIONAL_CALLS)


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


# ---------------------------------------------------------------- the shipped checkpoint

#: The first test-split problems of arith.benchmark("test", per_ops=40) with 1 operation (<= 6 characters)
#: and 2 operations (<= 8 characters), with their answers.
EASY: list[tuple[str, str]] = [
    ("6*17", "102"),
    ("5*3", "15"),
    ("129-7", "122"),
    ("89-3", "86"),
    ("6*404", "2424"),
    ("296+23", "319"),
    ("11*3+94", "127"),
    ("895*8+6", "7166"),
    ("822-58+5", "769"),
    ("6*65-86", "304"),
]


@pytest.fixture(scope="module")
def builtin():
    """load_backend("builtin") with downloads off and every network connection refused."""
    import socket

    from reasonkit.backends.loading import load_backend

    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    connect = socket.socket.connect

    def refuse(*args, **kwargs):
        raise AssertionError("the built-in model tried to reach the network")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield load_backend("builtin", device="cpu")
    finally:
        socket.socket.connect = connect  # type: ignore[method-assign]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_shipped_checkpoint_is_complete_and_small():
    from reasonkit.backends.loading import BUILTIN_DIR
    from reasonkit.models.builtin.checkpoint import EXPORT_FILES

    files = {p.name: p.stat().st_size for p in BUILTIN_DIR.iterdir() if p.is_file()}
    assert set(EXPORT_FILES) <= set(files)
    assert sum(files.values()) <= 25 * 10**6
    assert files["model.safetensors"] <= 16 * 2**20
    card = json.loads((BUILTIN_DIR / "reasonkit.json").read_text())
    assert card["prompt_pack"] == "compact2" and card["train_config"]["layer_types"]
    assert {"gla", "attn"} <= set(card["train_config"]["layer_types"])


def test_builtin_loads_offline_and_solves_easy_problems_with_cot(builtin):
    from reasonkit.strategies import make_strategy
    from reasonkit.tasks.arith import evaluate, make_problem

    assert builtin.prompt_pack == "compact2"  # v4 on (docs/builtin-model.md)
    problems = [make_problem(question) for question, _ in EASY]
    assert [p.answer for p in problems] == [answer for _, answer in EASY]
    assert all(str(evaluate(q)) == a for q, a in EASY)
    traces = make_strategy("cot").solve(problems, builtin)
    assert [t.answer for t in traces] == [answer for _, answer in EASY]
    assert all(t.correct for t in traces)


def test_builtin_refines_a_wrong_calculation_and_scores_the_repaired_state(builtin):
    from reasonkit.packs import load_pack
    from reasonkit.tasks.arith import make_problem, teacher

    pack = load_pack(builtin.prompt_pack)  # the pack it declares
    problem = make_problem("95+(50+626)")  # a test-split state of arith.corrupted_states
    wrong = ["50+626=672|95+672"]
    output = builtin.generate([pack.refine(problem, wrong)], pack.sampling("refine"))[0][0].text
    # exactly the teacher's target in the model's pack (with compact3: "50+626~676#" before the step)
    assert output == pack.format_refine("50+626=676|95+676", [("50+626", 676)])
    refined = pack.parse_refine(output)
    assert refined == "50+626=676|95+676"
    text = builtin.generate([pack.self_evaluate(problem, [refined])], pack.sampling("self_evaluate"))[0][
        0
    ].text
    assert (
        pack.parse_scores(text) == teacher.self_evaluate(problem.question, [refined]) == (3, 3, 3, 1, 1, 3, 3)
    )
