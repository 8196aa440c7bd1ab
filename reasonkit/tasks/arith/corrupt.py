"""Injected mistakes: corrupted versions of a correct step, so refine and self-evaluation can learn.

Four kinds, each the kind of slip a small model makes, each flipping a known self-evaluation aspect
(checked in tests against :func:`reasonkit.tasks.arith.teacher.self_evaluate`):

=========== ===================================================== ==========================
kind        what goes wrong                                       aspects of that step
=========== ===================================================== ==========================
arith       one calculation's value is wrong (±1, ±2, ±10, ±100,   A1 3, A2 3, A3 1
            a digit replaced, a digit dropped, the sign flipped);
            the rewrite uses the wrong value consistently
copy        calculations right, the rewrite miscopies one number   A1 1, A2 3, A3 3
            (a digit changed) or one operator
order       an operation precedence forbids is done first          A1 1, A2 3, A3 3
            (``3-4+5`` → ``4+5=9|3-9``); arithmetic itself right
malformed   the step is cut short (or loses its ``|``)             A2 1 (A1 1)
=========== ===================================================== ==========================
"""

from __future__ import annotations

import random

from reasonkit.tasks.arith.expr import Node, parse, render, value_of
from reasonkit.tasks.arith.steps import (
    blocked_pairs,
    format_step,
    match_subtrees,
    parse_step,
    step_at,
    tokens,
)

CORRUPTION_KINDS: tuple[str, ...] = ("arith", "copy", "order", "malformed")


def wrong_value(value: int, rng: random.Random) -> int:
    """A plausible wrong result for ``value`` (never equal to it)."""
    digits = str(abs(value))
    options = [value + d for d in (-1, 1, -2, 2, -10, 10)]
    if abs(value) >= 100:
        options += [value - 100, value + 100]
    if value != 0:
        options.append(-value)
    if len(digits) >= 2:
        options.append(int(digits[:-1]) * (1 if value > 0 else -1))  # a dropped last digit
    pos = rng.randrange(len(digits))
    swapped = digits[:pos] + str((int(digits[pos]) + rng.randrange(1, 10)) % 10) + digits[pos + 1 :]
    if not (len(swapped) > 1 and swapped[0] == "0"):
        options.append(int(swapped) * (1 if value >= 0 else -1))
    options = [o for o in options if o != value]
    return rng.choice(options)


def corrupt_step(prev: Node, step: str, kind: str, rng: random.Random) -> str | None:
    """A corrupted version of the correct ``step`` (which rewrites ``prev``), or None if impossible.

    ``order`` is impossible when no operation in ``prev`` is blocked by precedence; the others are
    always possible for a step that computes something.
    """
    if kind not in CORRUPTION_KINDS:
        raise ValueError(f"unknown corruption kind {kind!r}; known: {CORRUPTION_KINDS}")
    parsed = parse_step(step)
    paths = match_subtrees(prev, [c.lhs for c in parsed.calcs]) if parsed.calcs else None
    if kind == "order":
        return _order_mistake(prev, rng)
    if kind == "malformed":
        return _malformed(step, rng)
    if paths is None:
        return None
    if kind == "arith":
        values = [c.value for c in parsed.calcs]
        i = rng.randrange(len(values))
        values[i] = wrong_value(values[i], rng)
        return step_at(prev, paths, values)
    return _copy_mistake(step, rng)


def _copy_mistake(step: str, rng: random.Random) -> str | None:
    calcs_part, _, rewrite = step.partition("|")
    right = parse(rewrite)
    parts = tokens(rewrite)
    spots = [i for i, t in enumerate(parts) if t not in "()"]
    for _ in range(20):
        i = rng.choice(spots)
        changed = list(parts)
        if parts[i] in "+-*":
            changed[i] = rng.choice([o for o in "+-*" if o != parts[i]])
        else:
            negative = parts[i].startswith(("(", "-"))
            digits = parts[i].strip("()-")
            pos = rng.randrange(len(digits))
            new_digit = str((int(digits[pos]) + rng.randrange(1, 10)) % 10)
            if pos == 0 and new_digit == "0" and len(digits) > 1:
                continue  # a leading zero is not a number
            digits = digits[:pos] + new_digit + digits[pos + 1 :]
            changed[i] = (f"(-{digits})" if len(parts) > 1 else f"-{digits}") if negative else digits
        try:
            wrong = parse("".join(changed))
        except ValueError:
            continue
        if wrong != right:
            return f"{calcs_part}|{render(wrong)}"
    return None


def _order_mistake(prev: Node, rng: random.Random) -> str | None:
    """Do an adjacent ``a op b`` that is not a sub-expression (precedence or associativity forbids it)."""
    candidates = blocked_pairs(prev)
    if not candidates:
        return None
    i, pair = rng.choice(candidates)
    value = value_of(parse(pair))
    parts = tokens(render(prev))
    spliced = "".join([*parts[:i], f"({value})" if value < 0 else str(value), *parts[i + 3 :]])
    return format_step([(pair, value)], render(parse(spliced)))


def _malformed(step: str, rng: random.Random) -> str:
    cuts = [c for c in range(1, len(step)) if not parse_step(step[:c]).well_formed]
    if cuts and rng.random() < 0.8:
        return step[: rng.choice(cuts)]
    return step.replace("|", "", 1) or "|"
