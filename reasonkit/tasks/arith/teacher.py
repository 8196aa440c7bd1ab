"""The teacher: the correct output of every RL-of-Thoughts block for any arith reasoning state.

A state is the question plus the steps written so far (compact step strings, see
:mod:`reasonkit.tasks.arith.steps`), possibly with mistakes in them. Every function here is a pure
function of that state and returns structured data; prompt packs turn it into text
(:mod:`reasonkit.tasks.arith.training`). The rules (docs/arith.md has the full table):

- The *current expression* is the last step's rewrite (or the question), skipping steps whose
  rewrite cannot be read. Blocks continue faithfully from it, mistakes included: the teacher never
  silently repairs history, only refine repairs the last step, so the model learns what each block
  does rather than to ignore the state.
- reason: the canonical next step (leftmost ready operation).
- decompose: the operand terms of the top-level +/- chain (or factors of the top-level * chain)
  that still hold an operation, at most :data:`MAX_SUBTASKS`; a flat chain of literals is one
  subtask (the whole expression); nothing left → no subtask. Each subtask is solved on its own, in
  a short context, by its canonical chain; the summary substitutes the given results, right or
  wrong, in one step.
- debate: three candidate next operations (every ready operation first, then tempting invalid ones:
  adjacent pairs that precedence forbids, then miscopied ones), shuffled by a hash of the state; the
  most promising is the *valid* plan with the fewest operand digits (the easiest correct move, ties
  to the lower index; none valid → plan 1); following a valid plan applies exactly that operation,
  an invalid one falls back to the canonical step.
- refine: the last step unchanged when it is right; else the same calculations done right when
  their sub-expressions exist in the previous expression; else the canonical step from it.
- terminate: the value of the current expression; final check: the current expression is a number.
- self-evaluation: seven scores from the true state (:func:`self_evaluate`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from reasonkit.tasks.arith.expr import BinOp, Neg, Node, Num, count_ops, parse, render, value_of
from reasonkit.tasks.arith.steps import (
    blocked_pairs,
    canonical_step,
    check_step,
    expressions,
    format_step,
    gold_steps,
    match_subtrees,
    parse_step,
    ready_ops,
    split_history,
    step_at,
    tokens,
)

MAX_SUBTASKS = 4
N_PLANS = 3
ASPECT_ORDER = ("A1", "A2", "A3", "B1", "B2", "C1", "C2")


def current_expression(question: str, steps: Sequence[str]) -> Node:
    return expressions(question, split_history(steps))[-1]


def reason(question: str, steps: Sequence[str]) -> str:
    return canonical_step(current_expression(question, steps))


def answer(question: str, steps: Sequence[str]) -> int:
    """What terminate should say: the value of the current expression (faithful to the state)."""
    return value_of(current_expression(question, steps))


def final_check(question: str, steps: Sequence[str]) -> bool:
    """Yes when the current expression is a single integer."""
    return isinstance(current_expression(question, steps), Num)


# ------------------------------------------------------------------ decompose


def _chain_terms(node: Node) -> list[Node]:
    if isinstance(node, Neg):
        return [node.operand]
    if not isinstance(node, BinOp):
        return []
    group = "+-" if node.op in "+-" else "*"
    terms: list[Node] = []
    cur: Node = node
    while isinstance(cur, BinOp) and cur.op in group:
        terms.append(cur.right)
        cur = cur.left
    terms.append(cur)
    return terms[::-1]


def decompose(question: str, steps: Sequence[str]) -> list[str]:
    """Independent sub-expressions of the current expression to solve separately (see module doc)."""
    node = current_expression(question, steps)
    if count_ops(node) == 0:
        return []
    subtasks = [t for t in _chain_terms(node) if count_ops(t) > 0][:MAX_SUBTASKS]
    return [render(t) for t in subtasks] if subtasks else [render(node)]


def solve_subtask(subtask: str) -> tuple[list[str], int]:
    """A subtask's canonical chain of steps and its value (raises ArithExpressionError if unreadable)."""
    node = parse(subtask)
    return gold_steps(node), value_of(node)


def summarize(
    question: str, steps: Sequence[str], subtasks: Sequence[str], values: Sequence[int | None]
) -> str:
    """One step putting every readable subtask's given value into the current expression.

    Subtasks that cannot be read, have no value, or are not (free) sub-expressions are skipped; when
    none is left the summary is the canonical step.
    """
    node = current_expression(question, steps)
    chosen: list[Node] = []
    chosen_values: list[int] = []
    for text, value in zip(subtasks, values):
        try:
            lhs = parse(text)
        except ValueError:
            continue
        if value is not None and match_subtrees(node, [*chosen, lhs]) is not None:
            chosen.append(lhs)
            chosen_values.append(value)
    if not chosen:
        return canonical_step(node)
    paths = match_subtrees(node, chosen)
    assert paths is not None  # checked incrementally above
    return step_at(node, paths, chosen_values)


# ------------------------------------------------------------------ debate


def _state_rng(node: Node) -> random.Random:
    return random.Random(hashlib.sha256(render(node).encode()).hexdigest())


def _valid_plan(node: Node, plan: str) -> BinOp | None:
    """The ready operation a plan names, or None when it names none."""
    try:
        op = parse(plan)
    except ValueError:
        return None
    return next((n for _, n in ready_ops(node) if n == op), None)


def debate_plans(question: str, steps: Sequence[str]) -> list[str]:
    """Three candidate next operations: all ready ones first, then tempting invalid ones, shuffled."""
    node = current_expression(question, steps)
    ready = [render(n) for _, n in ready_ops(node)]
    if not ready:
        return []
    rng = _state_rng(node)
    plans = list(dict.fromkeys(ready))[:N_PLANS]
    tempting = [pair for pair in dict.fromkeys(text for _, text in blocked_pairs(node)) if pair not in plans]
    rng.shuffle(tempting)
    plans += tempting[: N_PLANS - len(plans)]
    for _ in range(100):  # a handful of tries always suffices; the bound only guards the loop
        if len(plans) >= N_PLANS:
            break
        miscopy = _miscopy(ready[rng.randrange(len(ready))], rng)
        if miscopy not in plans and _valid_plan(node, miscopy) is None:
            plans.append(miscopy)
    rng.shuffle(plans)
    return plans


def _miscopy(plan: str, rng: random.Random) -> str:
    """A plausible copying slip: another operator, or an operand off by one."""
    left, op, right = tokens(plan)
    if rng.random() < 0.5:
        return left + rng.choice([o for o in "+-*" if o != op]) + right
    target = rng.choice([0, 2])
    parts = [left, op, right]
    number = int(parts[target].strip("()"))
    bumped = number + rng.choice([-1, 1]) if abs(number) > 1 else number + 1
    parts[target] = str(bumped) if bumped >= 0 else f"({bumped})"
    return "".join(parts)


def _digits(op: BinOp) -> int:
    return sum(len(str(abs(n.value))) for n in (op.left, op.right) if isinstance(n, Num))


def debate_choice(question: str, steps: Sequence[str], plans: Sequence[str]) -> int:
    """0-based index of the most promising plan: the valid one with the fewest operand digits."""
    node = current_expression(question, steps)
    best, best_cost = 0, None
    for i, plan in enumerate(plans):
        op = _valid_plan(node, plan)
        if op is not None and (best_cost is None or _digits(op) < best_cost):
            best, best_cost = i, _digits(op)
    return best


def debate_follow(question: str, steps: Sequence[str], plan: str) -> str:
    """The step carrying out ``plan`` when it is a valid next operation, else the canonical step."""
    node = current_expression(question, steps)
    op = _valid_plan(node, plan)
    if op is None:
        return canonical_step(node)
    path = next(p for p, n in ready_ops(node) if n == op)
    return step_at(node, [path])


# ------------------------------------------------------------------ refine


def refine(question: str, steps: Sequence[str]) -> str:
    """The corrected last step (it replaces the last step); with no step yet, the canonical step."""
    history = split_history(steps)
    if not history:
        return canonical_step(parse(question))
    prev = expressions(question, history)[-2]
    last = parse_step(history[-1])
    paths = match_subtrees(prev, [c.lhs for c in last.calcs]) if last.calcs else None
    if paths is None:
        if not last.calcs and check_step(prev, history[-1]).ok:
            return format_step([], render(prev))
        return canonical_step(prev)
    return step_at(prev, paths)


# ------------------------------------------------------------------ self-evaluation


def self_evaluate(question: str, steps: Sequence[str]) -> tuple[int, ...]:
    """The 7 aspect scores (1 false, 2 unsure, 3 true, 0 not applicable) of the true state.

    A1 the last step is correctly derived from the expression before it (right sub-expressions,
       faithful rewrite); A2 it is well formed; A3 its arithmetic is right (0 if it computes nothing);
       A1–A3 are 0 before the first step.
    B1 complex work remains: 3 if ≥4 operations are left, 2 if 2–3, 1 if ≤1.
    B2 alternatives exist: 3 if ≥2 operations are ready at once, 1 if one, 0 if none is left.
    C1 close to the answer: 3 if ≤1 operation is left, 2 if 2, 1 if ≥3.
    C2 everything needed is known correctly: 3 if every step so far is right, else 1.
    """
    history = split_history(steps)
    exprs = expressions(question, history)
    checks = [check_step(prev, step) for prev, step in zip(exprs, history)]
    if checks:
        last = checks[-1]
        a1 = 3 if last.modelling else 1
        a2 = 3 if last.well_formed else 1
        a3 = 0 if last.calculation is None else 3 if last.calculation else 1
    else:
        a1 = a2 = a3 = 0
    node = exprs[-1]
    left = count_ops(node)
    n_ready = len(ready_ops(node))
    b1 = 3 if left >= 4 else 2 if left >= 2 else 1
    b2 = 0 if left == 0 else 3 if n_ready >= 2 else 1
    c1 = 3 if left <= 1 else 2 if left == 2 else 1
    c2 = 3 if all(c.ok for c in checks) else 1
    return (a1, a2, a3, b1, b2, c1, c2)


__all__ = [
    "ASPECT_ORDER",
    "MAX_SUBTASKS",
    "N_PLANS",
    "answer",
    "current_expression",
    "debate_choice",
    "debate_follow",
    "debate_plans",
    "decompose",
    "final_check",
    "reason",
    "refine",
    "self_evaluate",
    "solve_subtask",
    "summarize",
]
