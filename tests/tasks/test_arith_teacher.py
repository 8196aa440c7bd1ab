"""Every teacher output checked against the safe evaluator, on clean and corrupted states."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonkit.tasks.arith import ArithConfig, evaluate, generate, parse, teacher
from reasonkit.tasks.arith.corrupt import CORRUPTION_KINDS, corrupt_step
from reasonkit.tasks.arith.expr import count_ops, render
from reasonkit.tasks.arith.steps import check_step, expressions, match_subtrees, parse_step, ready_ops
from reasonkit.tasks.arith.training import corrupted_states, sample_state, solution_path

PROBLEMS = generate(40, split="train", seed=11, config=ArithConfig(min_ops=2))


def _rewrite(step: str) -> int:
    rewrite = parse_step(step).rewrite
    assert rewrite is not None
    return evaluate(render(rewrite))


def test_following_reason_steps_reaches_the_answer() -> None:
    for p in PROBLEMS:
        steps: list[str] = []
        while not teacher.final_check(p.question, steps):
            prev = teacher.current_expression(p.question, steps)
            step = teacher.reason(p.question, steps)
            assert check_step(prev, step).ok
            assert count_ops(parse_step(step).rewrite) == count_ops(prev) - 1
            steps.append(step)
        assert str(teacher.answer(p.question, steps)) == p.answer
        assert steps == p.meta["steps"]  # reason follows the canonical (gold) order
        assert teacher.reason(p.question, steps) == f"|{p.answer}"  # nothing left: restate the number


def test_reason_takes_the_leftmost_ready_operation() -> None:
    assert teacher.reason("3+4*5-6*7", []) == "4*5=20|3+20-6*7"
    assert teacher.reason("1-2+3*4", []) == "1-2=-1|(-1)+3*4"
    assert teacher.reason("(8-2)*(1+1)", ["8-2=6|6*(1+1)"]) == "1+1=2|6*2"


def test_decompose_subtasks_results_and_summary_are_right() -> None:
    for p in PROBLEMS:
        node = parse(p.question)
        subtasks = teacher.decompose(p.question, [])
        assert 1 <= len(subtasks) <= teacher.MAX_SUBTASKS
        assert match_subtrees(node, [parse(s) for s in subtasks]) is not None  # disjoint sub-expressions
        values = []
        for s in subtasks:
            chain, value = teacher.solve_subtask(s)
            assert value == evaluate(s)
            assert chain[-1].endswith(f"|{value}") and _rewrite(chain[-1]) == value
            values.append(value)
        summary = teacher.summarize(p.question, [], subtasks, values)
        assert check_step(node, summary).ok
        assert _rewrite(summary) == evaluate(p.question)


def test_decompose_hand_example_and_faithful_summary() -> None:
    q = "(12+7)*(30-25)-4*6"
    assert teacher.decompose(q, []) == ["(12+7)*(30-25)", "4*6"]
    assert teacher.summarize(q, [], ["(12+7)*(30-25)", "4*6"], [95, 24]) == "(12+7)*(30-25)=95,4*6=24|95-24"
    # a wrong result is summarised as given (no further reasoning), so A3 flags it afterwards
    wrong = teacher.summarize(q, [], ["(12+7)*(30-25)", "4*6"], [95, 25])
    assert wrong == "(12+7)*(30-25)=95,4*6=25|95-25"
    assert teacher.self_evaluate(q, [wrong])[:3] == (3, 3, 1)
    # unreadable or foreign subtasks are skipped; none left -> the canonical step
    assert teacher.summarize(q, [], ["x", "9*9"], [1, 81]) == teacher.reason(q, [])
    assert teacher.decompose("1+2+3", []) == ["1+2+3"]  # a flat chain is one subtask
    assert teacher.decompose("1+2+3", ["1+2=3|3+3", "3+3=6|6"]) == []


def test_debate_plans_choice_and_follow() -> None:
    for p in PROBLEMS:
        for steps in ([], p.meta["steps"][:1]):
            node = teacher.current_expression(p.question, steps)
            plans = teacher.debate_plans(p.question, steps)
            ready = [render(n) for _, n in ready_ops(node)]
            assert len(plans) == len(set(plans)) == 3
            assert set(ready[:3]) <= set(plans)
            valid = [i for i, plan in enumerate(plans) if plan in ready]
            choice = teacher.debate_choice(p.question, steps, plans)
            assert choice in valid
            digits = [sum(c.isdigit() for c in plans[i]) for i in valid]
            assert sum(c.isdigit() for c in plans[choice]) == min(digits)
            for i, plan in enumerate(plans):
                step = teacher.debate_follow(p.question, steps, plan)
                assert check_step(node, step).ok
                assert _rewrite(step) == evaluate(render(node))
                if i in valid:  # the chosen operation is the one carried out
                    assert render(parse_step(step).calcs[0].lhs) == plan
                else:
                    assert step == teacher.reason(p.question, steps)


def test_debate_hand_example() -> None:
    q = "3+4*(2-5)-6*7"
    plans = teacher.debate_plans(q, [])
    assert sorted(plans) == ["2-5", "3+4", "6*7"]  # two ready operations and one precedence forbids
    choice = teacher.debate_choice(q, [], plans)
    assert plans[choice] in ("2-5", "6*7")
    assert teacher.debate_follow(q, [], "6*7") == "6*7=42|3+4*(2-5)-42"
    assert teacher.debate_choice(q, [], ["3+4", "nonsense", "4*2"]) == 0  # none valid: plan 1
    assert teacher.debate_plans("42", []) == []


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_refine_restores_a_corrupted_last_step(kind: str) -> None:
    for state, correct in corrupted_states("train", 40, seed=1, kinds=[kind]):
        q, steps = state.problem.question, list(state.steps)
        prev = expressions(q, steps)[-2]
        assert not check_step(prev, steps[-1]).ok
        fixed = teacher.refine(q, steps)
        assert check_step(prev, fixed).ok
        assert _rewrite(fixed) == evaluate(render(prev))
        if kind in ("arith", "copy"):  # same operation, done right
            assert fixed == correct


def test_refine_leaves_a_correct_step_alone() -> None:
    for p in PROBLEMS:
        path = solution_path(parse(p.question), random.Random(p.id))
        for k in range(1, len(path) + 1):
            assert teacher.refine(p.question, path[:k]) == path[k - 1]
    assert teacher.refine("3+4*5", []) == "4*5=20|3+20"  # refine at step 0 acts as reason


def test_self_evaluation_on_a_hand_worked_state() -> None:
    q = "3+4*(2-5)-6*7"
    assert teacher.self_evaluate(q, []) == (0, 0, 0, 3, 3, 1, 3)
    assert teacher.self_evaluate(q, ["2-5=-3|3+4*(-3)-6*7"]) == (3, 3, 3, 3, 3, 1, 3)
    assert teacher.self_evaluate(q, ["2-5=-4|3+4*(-4)-6*7"]) == (3, 3, 1, 3, 3, 1, 1)  # arithmetic
    assert teacher.self_evaluate(q, ["2-5=-3|3+4*(-3)-6*8"]) == (1, 3, 3, 3, 3, 1, 1)  # copying
    assert teacher.self_evaluate(q, ["3+4=7|7*(2-5)-6*7"]) == (1, 3, 3, 3, 3, 1, 1)  # order
    assert teacher.self_evaluate(q, ["2-5=-3|3+4*("])[:3] == (1, 1, 3)  # malformed
    solved = ["2-5=-3|3+4*(-3)-6*7", "4*(-3)=-12|3+(-12)-6*7", "3+(-12)=-9|(-9)-6*7", "6*7=42|(-9)-42"]
    assert teacher.self_evaluate(q, solved) == (3, 3, 3, 1, 1, 3, 3)
    assert teacher.self_evaluate(q, [*solved, "(-9)-42=-51|-51"]) == (3, 3, 3, 1, 0, 3, 3)
    # an earlier mistake keeps C2 false even when the last step is right
    assert teacher.self_evaluate(q, ["2-5=-4|3+4*(-4)-6*7", "4*(-4)=-16|3+(-16)-6*7"])[:3] == (3, 3, 3)
    assert teacher.self_evaluate(q, ["2-5=-4|3+4*(-4)-6*7", "4*(-4)=-16|3+(-16)-6*7"])[6] == 1


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_self_evaluation_matches_each_mistake_kind(kind: str) -> None:
    expected = {"arith": (3, 3, 1), "copy": (1, 3, 3), "order": (1, 3, 3)}
    for state, _ in corrupted_states("train", 30, seed=2, kinds=[kind]):
        scores = teacher.self_evaluate(state.problem.question, state.steps)
        assert scores[6] == 1  # C2: not everything known is right any more
        if kind == "malformed":
            assert scores[1] == 1 and scores[0] == 1
        else:
            assert scores[:3] == expected[kind]


def test_terminate_and_final_check_are_faithful_to_the_state() -> None:
    rng = random.Random(0)
    for p in PROBLEMS:
        node = parse(p.question)
        state = sample_state(node, "terminate", rng, corrupt_rate=1.0)
        current = teacher.current_expression(p.question, state.steps)
        assert teacher.answer(p.question, state.steps) == evaluate(render(current))
        assert teacher.final_check(p.question, state.steps) == (count_ops(current) == 0)
    # a wrong last step leads to a wrong (but faithful) answer: terminate does not silently repair
    assert teacher.answer("3+4", ["3+4=8|8"]) == 8


def test_corrupt_step_kinds_and_errors() -> None:
    rng = random.Random(0)
    prev = parse("3-4+5")
    assert corrupt_step(prev, "3-4=-1|(-1)+5", "order", rng) == "4+5=9|3-9"
    assert corrupt_step(parse("(3+4)*5"), "3+4=7|7*5", "order", rng) is None  # nothing to misorder
    with pytest.raises(ValueError, match="unknown corruption kind"):
        corrupt_step(prev, "3-4=-1|(-1)+5", "typo", rng)


_STEP_CHARS = st.text(alphabet="0123456789+-*()=|,; x", max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(_STEP_CHARS, max_size=4))
def test_teacher_never_breaks_on_garbage_steps(steps: list[str]) -> None:
    q = "12+3*(4-1)"
    scores = teacher.self_evaluate(q, steps)
    assert len(scores) == 7 and all(s in (0, 1, 2, 3) for s in scores)
    for fn in (teacher.reason, teacher.refine):
        step = fn(q, steps)
        assert parse_step(step).well_formed
    teacher.debate_plans(q, steps)
    teacher.decompose(q, steps)
    teacher.final_check(q, steps)
