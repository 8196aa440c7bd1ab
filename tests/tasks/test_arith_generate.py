"""Problem generation: determinism, split disjointness, limits, gold steps, JSONL round trip."""

import json
import random

import pytest

from reasonkit.rundir import RecordError
from reasonkit.tasks.arith import (
    ArithConfig,
    benchmark,
    check_step,
    count_ops,
    evaluate,
    export_jsonl,
    generate,
    level_of,
    load_jsonl,
    make_problem,
    parse,
    sample_expression,
    split_of,
)
from reasonkit.tasks.arith.expr import BinOp, value_of
from reasonkit.tasks.arith.steps import expressions, parse_step, subtrees
from reasonkit.types import Problem


def test_generation_is_deterministic_in_the_seed() -> None:
    a = generate(40, split="train", seed=3)
    b = generate(40, split="train", seed=3)
    c = generate(40, split="train", seed=4)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.question for p in a] != [p.question for p in c]


def test_splits_are_disjoint_by_hash_and_labelled() -> None:
    by_split = {s: generate(150, split=s, seed=0, n_ops=[1, 2, 3]) for s in ("train", "validation", "test")}
    questions = {s: {p.question for p in ps} for s, ps in by_split.items()}
    assert not questions["train"] & questions["test"]
    assert not questions["train"] & questions["validation"]
    assert not questions["validation"] & questions["test"]
    for s, ps in by_split.items():
        assert all(p.meta["split"] == s == split_of(p.question) for p in ps)
    # the hash split is a fixed function of the canonical text, not of how it was written
    assert split_of("(3*4)+5") == split_of("3*4+5")


def test_split_fractions_are_roughly_80_10_10() -> None:
    rng = random.Random(0)
    counts = {"train": 0, "validation": 0, "test": 0}
    for _ in range(3000):
        counts[split_of(f"{rng.randint(1, 999)}+{rng.randint(1, 999)}*{rng.randint(1, 9)}")] += 1
    assert 0.75 < counts["train"] / 3000 < 0.85
    assert 0.07 < counts["test"] / 3000 < 0.13


def test_problem_records_follow_the_schema() -> None:
    for p in generate(60, split="test", seed=1):
        assert p.kind == "arith"
        assert p.answer == str(evaluate(p.question))
        assert p.meta["n_ops"] == count_ops(parse(p.question))
        assert p.meta["level"] == level_of(p.meta["n_ops"])
        assert p.id.startswith("arith-")
        assert len(p.meta["steps"]) == p.meta["n_ops"]


def test_gold_steps_do_one_correct_operation_each_and_reach_the_answer() -> None:
    for p in generate(80, split="train", seed=2):
        steps = p.meta["steps"]
        exprs = expressions(p.question, steps)
        for prev, step in zip(exprs, steps):
            assert check_step(prev, step).ok
            assert len(parse_step(step).calcs) == 1
            assert count_ops(parse_step(step).calcs[0].lhs) == 1
        assert steps[-1].rsplit("|", 1)[1] == p.answer
        assert evaluate(steps[-1].rsplit("|", 1)[1]) == evaluate(p.question)


def test_hand_worked_gold_solution() -> None:
    p = make_problem("3+4*(2-5)-6*7")
    assert p.meta["steps"] == [
        "2-5=-3|3+4*(-3)-6*7",
        "4*(-3)=-12|3+(-12)-6*7",
        "3+(-12)=-9|(-9)-6*7",
        "6*7=42|(-9)-42",
        "(-9)-42=-51|-51",
    ]
    assert p.answer == "-51"


@pytest.mark.parametrize("n_ops", [1, 4, 8])
def test_operation_counts_levels_and_limits(n_ops: int) -> None:
    cfg = ArithConfig()
    rng = random.Random(n_ops)
    for _ in range(100):
        node = sample_expression(rng, n_ops, cfg)
        assert count_ops(node) == n_ops
        for _, sub in subtrees(node):
            assert abs(value_of(sub)) <= cfg.max_abs_value
            if isinstance(sub, BinOp) and sub.op == "*":
                assert min(abs(value_of(sub.left)), abs(value_of(sub.right))) < 10
    levels = {level_of(p.meta["n_ops"]) for p in generate(30, split="train", level=2)}
    assert levels == {2}
    assert {p.meta["n_ops"] for p in generate(30, split="train", level=4)} <= {7, 8}


def test_solution_length_cap() -> None:
    for p in generate(60, split="train", seed=4, n_ops=8):
        assert len(p.question) + sum(len(s) + 1 for s in p.meta["steps"]) <= ArithConfig().max_solution_chars
    tight = ArithConfig(max_solution_chars=60)
    for p in generate(20, split="train", seed=4, n_ops=3, config=tight):
        assert len(p.question) + sum(len(s) + 1 for s in p.meta["steps"]) <= 60
    with pytest.raises(ValueError, match="max_solution_chars=20"):
        generate(1, n_ops=8, config=ArithConfig(max_solution_chars=20))


def test_operand_digits_are_configurable() -> None:
    cfg = ArithConfig(min_digits=2, max_digits=2, max_abs_value=10**5)
    for p in generate(30, split="train", seed=0, config=cfg, n_ops=1):
        a, b = p.question.replace("*", "+").replace("-", "+").split("+")
        assert 1 <= len(a) <= 2 and 1 <= len(b) <= 2  # a product keeps one single-digit factor
        assert max(len(a), len(b)) == 2


def test_benchmark_is_stratified_by_operations() -> None:
    problems = benchmark("test", per_ops=3, seed=0)
    assert [p.meta["n_ops"] for p in problems] == [k for k in range(1, 9) for _ in range(3)]
    assert len({p.question for p in problems}) == len(problems)


def test_jsonl_round_trip(tmp_path) -> None:
    problems = generate(20, split="validation", seed=5)
    path = export_jsonl(problems, tmp_path / "arith.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 20 and json.loads(lines[0])["kind"] == "arith"
    back = load_jsonl(path)
    assert back == problems
    assert [p.meta for p in back] == [p.meta for p in problems]
    assert [Problem.from_dict(json.loads(line)) for line in lines] == problems


def test_jsonl_bad_line_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "question": "1+1", "answer": "2", "kind": "arith"}\n{"id": "b"}\n')
    with pytest.raises(RecordError, match=r"bad.jsonl, line 2"):
        load_jsonl(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_ops": 0}, "min_ops"),
        ({"min_ops": 5, "max_ops": 3}, "min_ops"),
        ({"max_digits": 12}, "max_digits"),
        ({"mul_max_digits": 4}, "mul_max_digits"),
        ({"max_abs_value": 50}, "max_abs_value"),
        ({"op_weights": (1.0, -1.0, 1.0)}, "op_weights"),
        ({"max_solution_chars": -1}, "max_solution_chars"),
    ],
)
def test_bad_config_is_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArithConfig(**kwargs)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        generate(3, split="dev")
    with pytest.raises(ValueError, match="n_ops or level"):
        generate(3, n_ops=2, level=1)
    with pytest.raises(ValueError, match="space is too small"):
        generate(60, split="test", n_ops=1, config=ArithConfig(max_digits=1))
    with pytest.raises(ValueError, match="at least one operation"):
        make_problem("42")
