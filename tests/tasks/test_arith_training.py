"""Training pairs: determinism, resumption, mixtures, lengths, and targets checked with the evaluator."""

import contextlib
import random
import re

import pytest

from reasonkit.answers import extract_int
from reasonkit.packs import load_pack
from reasonkit.tasks.arith import ArithConfig, evaluate, parse
from reasonkit.tasks.arith.expr import count_ops, render
from reasonkit.tasks.arith.training import (
    DEFAULT_MIXTURE,
    example,
    sample_state,
    training_examples,
)

COMPACT = load_pack("compact")
_PROMPT = re.compile(r"<q>(?P<context>[^<]*)(?P<token><[a-z]+>)(?P<args>.*)", re.S)


def _split(prompt: str) -> tuple[str, list[str], str, str]:
    m = _PROMPT.fullmatch(prompt)
    assert m, prompt
    question, *steps = m["context"].split(";")
    return question, steps, m["token"], m["args"]


def _last_readable(question: str, steps: list[str]) -> str:
    """The expression the history ends on (an unreadable rewrite leaves it where it was)."""
    current = question
    for step in steps:
        rewrite = step.partition("|")[2]
        with contextlib.suppress(ValueError):
            evaluate(rewrite)
            current = rewrite
    return current


def test_pairs_are_deterministic_and_resumable() -> None:
    first = list(training_examples("train", n=30, seed=7))
    assert first == list(training_examples("train", n=30, seed=7))
    assert first[10:] == list(training_examples("train", n=20, seed=7, start=10))
    assert first != list(training_examples("train", n=30, seed=8))


def test_mixture_selects_tasks_and_bad_mixtures_fail() -> None:
    pairs = list(training_examples("train", n=20, seed=0, mixture={"refine": 1.0}))
    assert all(_split(p)[2] == "<refine>" for p, _ in pairs)
    tokens = {_split(p)[2] for p, _ in training_examples("train", n=300, seed=0)}
    assert tokens == set(COMPACT.control_tokens) - {"<q>"}
    with pytest.raises(ValueError, match="unknown task"):
        list(training_examples(n=1, mixture={"meditate": 1.0}))
    with pytest.raises(ValueError, match="positive sum"):
        list(training_examples(n=1, mixture={"cot": 0.0}))
    with pytest.raises(ValueError, match="split must be one of"):
        list(training_examples("dev", n=1))
    with pytest.raises(ValueError, match="unknown task 'ponder'"):
        example("ponder", "train", 0, 0, COMPACT)


def test_compact_pairs_fit_the_budget_at_8_operations_and_3_digits() -> None:
    cfg = ArithConfig(min_ops=8, max_ops=8)
    longest = 0
    for task in DEFAULT_MIXTURE:
        for i in range(25):
            prompt, target = example(task, "train", 0, i, COMPACT, cfg)
            assert isinstance(prompt, str) and "\n" not in prompt
            assert target.endswith("\n") and "\n" not in target[:-1]
            longest = max(longest, len(prompt) + len(target))
    assert longest <= 384


def test_compact_targets_agree_with_the_evaluator() -> None:
    checked = dict.fromkeys(DEFAULT_MIXTURE, 0)
    for prompt, target in training_examples("train", n=600, seed=3):
        question, steps, token, _ = _split(prompt)
        out = target[:-1]
        current = evaluate(_last_readable(question, steps))
        if token == "<cot>":
            assert extract_int(out) == str(evaluate(question))
            checked["cot"] += 1
        elif token == "<sub>":
            assert extract_int(out) == str(evaluate(question))  # the prompt holds just the subtask
            checked["solve_subtask"] += 1
        elif token == "<ans>":
            assert out == f"The answer is {current}"
            checked["terminate"] += 1
        elif token in ("<step>", "<follow>"):
            assert evaluate(out.split("|")[1]) == current  # a correct step keeps the value
            for calc in filter(None, out.split("|")[0].split(",")):
                lhs, value = calc.split("=")
                assert evaluate(lhs) == int(value)
            checked["reason_step"] += 1
        elif token == "<done>":
            finished = re.fullmatch(r"-?\d+", _last_readable(question, steps)) is not None
            assert COMPACT.parse_yes_no(out) == finished
            checked["final_check"] += 1
        elif token == "<eval>":
            scores = COMPACT.parse_scores(out)
            if steps and steps[-1].count("|") == 1 and "=" in steps[-1]:
                calcs = steps[-1].split("|")[0].split(",")
                try:
                    right = all(evaluate(c.split("=")[0]) == int(c.split("=")[1]) for c in calcs)
                except ValueError:
                    right = False
                assert scores[2] == (3 if right else 1)  # A3: the last step's arithmetic
            left = count_ops(parse(_last_readable(question, steps)))
            assert scores[5] == (3 if left <= 1 else 2 if left == 2 else 1)  # C1
            checked["self_evaluate"] += 1
        elif token == "<dec>":
            for sub in COMPACT.parse_subtasks(out):
                assert count_ops(parse(sub)) >= 1
            checked["decompose"] += 1
    assert all(checked[t] > 0 for t in ("cot", "solve_subtask", "terminate", "reason_step", "self_evaluate"))


def test_refine_and_self_evaluate_states_are_half_corrupted() -> None:
    rng = random.Random(0)
    node = parse("12+3*(45-6)-7*8+9")
    for task, rate in (("refine", 0.5), ("self_evaluate", 0.5), ("reason_step", 0.15)):
        states = [sample_state(node, task, rng) for _ in range(400)]
        with_steps = [s for s in states if s.steps]
        share = sum(bool(s.mistakes) for s in with_steps) / len(with_steps)
        assert abs(share - rate) < 0.1, (task, share)


def test_natural_pack_pairs_are_chat_prompts_with_parsable_targets() -> None:
    natural = load_pack("natural")
    mixture = {"cot": 1.0, "self_evaluate": 1.0, "debate_plans": 1.0, "decompose": 1.0}
    for messages, target in training_examples("train", n=40, seed=1, pack="natural", mixture=mixture):
        assert isinstance(messages, list) and messages[-1]["role"] == "user"
        content = messages[-1]["content"]
        if "Let's think step by step" in content:
            expr = re.search(r"expression (.*)\.\n", content)
            assert expr and extract_int(target) == str(evaluate(expr.group(1)))
        elif "evaluate the current step" in content:
            assert all(s in (0, 1, 2, 3) for s in natural.parse_scores(target))
            assert natural.parse_scores(target)[3] > 0  # B1 always applies
        elif "alternative plans" in content:
            plans = natural.parse_plans(target)
            assert len(plans) == 3 and all(count_ops(parse(p)) == 1 for p in plans if p)
        else:
            assert all(render(parse(s)) == s for s in natural.parse_subtasks(target))
