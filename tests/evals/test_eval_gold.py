"""Every gold answer of every shared benchmark, written the way a model would state it, grades
correct (100%), and a wrong answer grades wrong. This is the full extraction path: the Problem's
gold as the loader produced it, a response text, and reasonkit.answers.grade_many.

GPQA: failure messages carry problem ids only, never question or option text."""

from __future__ import annotations

import pytest

from reasonkit.answers import grade_many, normalize_math
from reasonkit.evals import load

COUNTS = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "gsm8k": 1319}


def response(problem, answer: str) -> str:
    if problem.kind == "math":
        return f"Let me work it out step by step.\nTherefore, the final answer is: $\\boxed{{{answer}}}$. I hope it is correct"
    if problem.kind == "choice":
        return f"Considering each option in turn, one stands out.\nAnswer: {answer}"
    return f"Adding everything up carefully. The answer is {answer}"


def wrong_answer(problems, i: int) -> str:
    """A surely-wrong answer: for integers gold + 1; for letters the next letter; for math the gold
    of the next problem whose answer differs (also after an 'x =' prefix, e.g. '5' vs 'x=5')."""
    problem = problems[i]
    if problem.kind in ("int", "arith"):
        return str(int(problem.answer) + 1)
    if problem.kind == "choice":
        return "ABCD"[("ABCD".index(problem.answer) + 1) % 4]
    key = normalize_math(problem.answer).rsplit("=", 1)[-1]
    j = (i + 1) % len(problems)
    while normalize_math(problems[j].answer).rsplit("=", 1)[-1] == key:
        j = (j + 1) % len(problems)
    return problems[j].answer


def check(problems) -> None:
    right = grade_many([(response(p, p.answer), p.answer, p.kind) for p in problems])
    missed = [p.id for p, ok in zip(problems, right) if not ok]
    assert not missed, f"gold answers graded wrong: {missed}"
    wrong = grade_many(
        [(response(p, wrong_answer(problems, i)), p.answer, p.kind) for i, p in enumerate(problems)]
    )
    accepted = [p.id for p, ok in zip(problems, wrong) if ok]
    assert not accepted, f"wrong answers graded correct: {accepted}"


@pytest.mark.parametrize("name", list(COUNTS))
def test_benchmark_counts_and_gold_grading(data_dir, name):
    problems = load(name, data_dir)
    assert len(problems) == COUNTS[name]
    assert len({p.id for p in problems}) == len(problems)
    assert {p.kind for p in problems} == ({"math"} if name == "math500" else {"int"})
    check(problems)


@pytest.mark.parametrize(("subset", "count"), [("diamond", 198), ("main", 448)])
def test_gpqa_counts_and_gold_grading(gpqa_zip, subset, count):
    problems = load(f"gpqa_{subset}", gpqa_zip)
    assert len(problems) == count
    assert all(p.kind == "choice" and len(p.choices or ()) == 4 for p in problems)
    check(problems)


def test_named_golds_are_canonical(data_dir):
    aime = {p.id: p.answer for p in load("aime24", data_dir)}
    assert all(a == str(int(a)) for a in aime.values())  # "025" is stored as "25"
    assert load("amc23", data_dir)[0].answer == "27"  # JSON 27.0
    assert load("gsm8k", data_dir)[0].answer == "18"  # "... #### 18"
