"""Reasoning steps of the arith task: their text format, how they are checked, the canonical order.

A step evaluates one or more independent sub-expressions of the current expression and rewrites it:

    CALC[,CALC…]|EXPR        e.g.  "4*5=20|3+20"   or (a decompose summary)  "2+3=5,4*6=24|5*24"

where each CALC is ``sub-expression=value`` and EXPR is the whole expression after substituting the
values. A step with no calculation (``"|23"``) restates a finished expression. A history is a list of
such steps; a history item holding several ``;``-separated steps counts as several steps (that is
how the compact prompt pack shows them to the model).

The canonical (gold) order evaluates the leftmost *ready* operation — a binary operation whose two
operands are literals — one per step. Standard precedence and left associativity are encoded by the
tree, so any ready operation is a valid next step; "leftmost" only fixes the order.

A step is checked against the expression it rewrites (:func:`check_step`):
  - well formed: every CALC and the EXPR parse;
  - modelling: every CALC's left side is a distinct sub-expression (with at least one operation) of
    the previous expression, and EXPR is the previous expression with the *claimed* values put in;
  - calculation: every CALC's value is right (None when the step has no CALC).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from reasonkit.tasks.arith.expr import (
    ArithExpressionError,
    BinOp,
    Neg,
    Node,
    Num,
    negate,
    parse,
    render,
    value_of,
)

Path = tuple[int, ...]  # child indices from the root: 0 = left (or a negation's operand), 1 = right
_INT = re.compile(r"-?\d{1,30}")
_TOKEN = re.compile(
    r"\(-\d+\)|\d+|[-+*()]"
)  # a literal (negative ones in parentheses), an operator, a parenthesis


@dataclass(frozen=True)
class Calc:
    lhs: Node
    value: int


@dataclass(frozen=True)
class ParsedStep:
    calcs: tuple[Calc, ...]  # the CALCs that parsed
    bad_calcs: int  # CALC parts that did not parse
    rewrite: Node | None  # None when EXPR is missing or does not parse

    @property
    def well_formed(self) -> bool:
        return self.bad_calcs == 0 and self.rewrite is not None


@dataclass(frozen=True)
class StepCheck:
    well_formed: bool
    modelling: bool
    calculation: bool | None  # None: the step computes nothing

    @property
    def ok(self) -> bool:
        return self.well_formed and self.modelling and self.calculation is not False


def _try_parse(text: str) -> Node | None:
    try:
        return parse(text)
    except ArithExpressionError:
        return None


def parse_step(text: str) -> ParsedStep:
    """Read a step's text; never raises (what does not parse is counted, not thrown)."""
    text = text.strip()
    calcs_part, bar, rewrite_part = text.partition("|")
    rewrite = _try_parse(rewrite_part) if bar and "|" not in rewrite_part else None
    calcs: list[Calc] = []
    bad = 0
    for part in calcs_part.split(",") if calcs_part.strip() else []:
        lhs_text, eq, value_text = part.partition("=")
        lhs = _try_parse(lhs_text) if eq else None
        value_text = value_text.strip()
        if lhs is None or not _INT.fullmatch(value_text):
            bad += 1
            continue
        calcs.append(Calc(lhs, int(value_text)))
    return ParsedStep(tuple(calcs), bad, rewrite)


def split_history(steps: Sequence[str]) -> list[str]:
    """History items as single steps: ``;``-joined items are split, empty parts dropped."""
    return [part.strip() for item in steps for part in item.split(";") if part.strip()]


# ------------------------------------------------------------------ tree positions


def subtrees(node: Node, path: Path = ()) -> Iterator[tuple[Path, Node]]:
    """Every (path, subtree) in pre-order, i.e. in the textual order where each subtree starts."""
    stack: list[tuple[Path, Node]] = [(path, node)]
    while stack:  # an explicit stack: nested generators made this the teacher's hot spot
        here, sub = stack.pop()
        yield here, sub
        if isinstance(sub, BinOp):
            stack.append(((*here, 1), sub.right))
            stack.append(((*here, 0), sub.left))
        elif isinstance(sub, Neg):
            stack.append(((*here, 0), sub.operand))


def ready_ops(node: Node) -> list[tuple[Path, BinOp]]:
    """Operations whose operands are both literals, left to right."""
    return [
        (p, n)
        for p, n in subtrees(node)
        if isinstance(n, BinOp) and isinstance(n.left, Num) and isinstance(n.right, Num)
    ]


def tokens(text: str) -> list[str]:
    """Canonical expression text as literals, operators and parentheses (``(-7)`` is one literal)."""
    return _TOKEN.findall(text)


def blocked_pairs(node: Node) -> list[tuple[int, str]]:
    """Adjacent ``a op b`` literal pairs in the text of ``node`` that are *not* ready operations.

    Precedence or associativity forbids doing them first (``3+4`` in ``3+4*5``, ``4+5`` in
    ``3-4+5``): the tempting wrong moves. Each comes with its token index in ``tokens(render(node))``.
    """
    parts = tokens(render(node))
    ready = {render(n) for _, n in ready_ops(node)}
    return [
        (i, "".join(parts[i : i + 3]))
        for i in range(len(parts) - 2)
        if parts[i + 1] in "+-*"
        and parts[i] not in "+-*()"
        and parts[i + 2] not in "+-*()"
        and "".join(parts[i : i + 3]) not in ready
    ]


def _overlaps(a: Path, b: Path) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


def match_subtrees(node: Node, lhss: Sequence[Node]) -> list[Path] | None:
    """Disjoint positions of each left side among ``node``'s operation subtrees (leftmost free first).

    None when some left side is a literal or occurs nowhere free.
    """
    taken: list[Path] = []
    for lhs in lhss:
        if isinstance(lhs, Num):
            return None
        spot = next(
            (p for p, n in subtrees(node) if n == lhs and not any(_overlaps(p, t) for t in taken)), None
        )
        if spot is None:
            return None
        taken.append(spot)
    return taken


def substitute(node: Node, replacements: dict[Path, Node], path: Path = ()) -> Node:
    """``node`` with the subtrees at the given paths replaced (negations of literals fold)."""
    if path in replacements:
        return replacements[path]
    if isinstance(node, BinOp):
        return BinOp(
            node.op,
            substitute(node.left, replacements, (*path, 0)),
            substitute(node.right, replacements, (*path, 1)),
        )
    if isinstance(node, Neg):
        return negate(substitute(node.operand, replacements, (*path, 0)))
    return node


# ------------------------------------------------------------------ writing steps


def format_step(calcs: Sequence[tuple[str, int]], expr: str) -> str:
    """Compact step text from (sub-expression text, value) pairs and the rewritten expression text."""
    return ",".join(f"{lhs}={value}" for lhs, value in calcs) + "|" + expr


def step_at(node: Node, paths: Sequence[Path], values: Sequence[int] | None = None) -> str:
    """The step evaluating the subtrees at ``paths`` (with their true values unless ``values`` given)."""
    by_path = dict(subtrees(node))
    lhss = [by_path[p] for p in paths]
    vals = [value_of(n) for n in lhss] if values is None else list(values)
    new = substitute(node, {p: Num(v) for p, v in zip(paths, vals)})
    return format_step([(render(n), v) for n, v in zip(lhss, vals)], render(new))


def apply_step(node: Node, paths: Sequence[Path]) -> Node:
    by_path = dict(subtrees(node))
    return substitute(node, {p: Num(value_of(by_path[p])) for p in paths})


def canonical_step(node: Node) -> str:
    """The gold next step: evaluate the leftmost ready operation (``"|V"`` when nothing is left)."""
    path = _leftmost_ready(node)
    return format_step([], render(node)) if path is None else step_at(node, [path])


def gold_steps(node: Node) -> list[str]:
    """The canonical solution: one operation per step until a single integer is left."""
    steps = []
    while (path := _leftmost_ready(node)) is not None:
        steps.append(step_at(node, [path]))
        node = apply_step(node, [path])
    return steps


def _leftmost_ready(node: Node) -> Path | None:
    ready = ready_ops(node)
    return ready[0][0] if ready else None


# ------------------------------------------------------------------ checking steps


def check_step(prev: Node, text: str) -> StepCheck:
    """How a step's text relates to the expression it rewrites (see the module docstring)."""
    step = parse_step(text)
    if step.bad_calcs:
        calculation: bool | None = False
    elif not step.calcs:
        calculation = None
    else:
        calculation = all(_value_or_none(c.lhs) == c.value for c in step.calcs)
    modelling = False
    if step.well_formed:
        paths = match_subtrees(prev, [c.lhs for c in step.calcs])
        if paths is not None:
            claimed = substitute(prev, {p: Num(c.value) for p, c in zip(paths, step.calcs)})
            modelling = claimed == step.rewrite
    return StepCheck(step.well_formed, modelling, calculation)


def _value_or_none(node: Node) -> int | None:
    try:
        return value_of(node)
    except ArithExpressionError:
        return None


def expressions(question: str, steps: Sequence[str]) -> list[Node]:
    """The expression before the first step and after each step of a split history.

    A step whose rewrite does not parse leaves the expression unchanged: the next block works from
    the last expression that can be read.
    """
    current = parse(question)
    out = [current]
    for step in steps:
        rewrite = parse_step(step).rewrite
        if rewrite is not None:
            current = rewrite
        out.append(current)
    return out
