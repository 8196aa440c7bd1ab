"""Arith problems: random expressions by difficulty, hash splits, Problem records and JSONL files.

A problem is an integer expression with +, -, * and parentheses, 1–8 operations and operands of 1–3
digits (all configurable in :class:`ArithConfig`), written in canonical form (minimal parentheses).
Its level is ``ceil(n_ops / 2)``: level 1 = 1–2 operations … level 4 = 7–8.

Products keep one small factor (below ``10**mul_max_digits`` in size, by default a single digit)
and every intermediate value stays within ``±max_abs_value``: multi-digit long multiplication is
not what a 1–5M-parameter model can learn on CPU. The written-out gold solution is capped at
``max_solution_chars`` (a fraction of a percent of 8-operation draws are longer), which keeps a
compact chain of thought within 384 characters for a char-level model. Intermediate values may be
negative.

Splits are disjoint by a hash of the canonical expression text (80 / 10 / 10 % train / validation /
test): no test *expression* is ever a training problem. Sub-expressions and single calculations are
shared between splits by design — they are the skill being learned.

    >>> problems = generate(3, split="test", seed=0, n_ops=2)
    >>> [p.meta["split"] for p in problems]
    ['test', 'test', 'test']
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reasonkit.rundir import RecordError, atomic_write_text, iter_jsonl
from reasonkit.tasks.arith.expr import BinOp, Node, Num, count_ops, parse, render, value_of
from reasonkit.tasks.arith.steps import gold_steps, subtrees
from reasonkit.types import Problem

SPLITS: tuple[str, ...] = ("train", "validation", "test")
SPLIT_PERCENT: dict[str, tuple[int, int]] = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}
MAX_OPS_LIMIT = 16


def level_of(n_ops: int) -> int:
    """Difficulty level of a problem with ``n_ops`` operations: 1–2 → 1, 3–4 → 2, 5–6 → 3, 7–8 → 4."""
    return (n_ops + 1) // 2


def ops_of_level(level: int) -> tuple[int, int]:
    if level < 1:
        raise ValueError(f"level must be >= 1, got {level}")
    return 2 * level - 1, 2 * level


def split_of(expression: str) -> str:
    """The split an expression belongs to, from the SHA-256 of its canonical text."""
    bucket = int(hashlib.sha256(render(parse(expression)).encode()).hexdigest()[:8], 16) % 100
    return next(name for name, (lo, hi) in SPLIT_PERCENT.items() if lo <= bucket < hi)


@dataclass(frozen=True)
class ArithConfig:
    """How arith problems are drawn."""

    min_ops: int = field(default=1, metadata={"help": "fewest operations in a problem"})
    max_ops: int = field(default=8, metadata={"help": "most operations in a problem"})
    min_digits: int = field(default=1, metadata={"help": "fewest digits of an operand"})
    max_digits: int = field(default=3, metadata={"help": "most digits of an operand"})
    mul_max_digits: int = field(
        default=1, metadata={"help": "in every product one factor is below 10**this in size"}
    )
    max_abs_value: int = field(default=9999, metadata={"help": "every intermediate value stays within ±this"})
    op_weights: tuple[float, float, float] = field(
        default=(0.35, 0.35, 0.3), metadata={"help": "relative frequency of +, -, *"}
    )
    max_solution_chars: int = field(
        default=340,
        metadata={
            "help": "longest gold solution (question plus ';'-joined steps) in characters; the default "
            "keeps the compact chain of thought within 384 characters (0: no limit)"
        },
    )

    def __post_init__(self) -> None:
        if not 1 <= self.min_ops <= self.max_ops <= MAX_OPS_LIMIT:
            raise ValueError(
                f"ArithConfig needs 1 <= min_ops <= max_ops <= {MAX_OPS_LIMIT}, "
                f"got min_ops={self.min_ops}, max_ops={self.max_ops}"
            )
        if not 1 <= self.min_digits <= self.max_digits <= 9:
            raise ValueError(
                f"ArithConfig needs 1 <= min_digits <= max_digits <= 9, "
                f"got min_digits={self.min_digits}, max_digits={self.max_digits}"
            )
        if not 1 <= self.mul_max_digits <= self.max_digits:
            raise ValueError(f"mul_max_digits must be in 1..max_digits, got {self.mul_max_digits}")
        if self.max_abs_value < 10**self.max_digits:
            raise ValueError(
                f"max_abs_value ({self.max_abs_value}) must be at least 10**max_digits "
                f"({10**self.max_digits}) so that sums of operands fit"
            )
        weights = tuple(self.op_weights)
        if len(weights) != 3 or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"op_weights must be 3 non-negative numbers for +, -, *, got {weights}")
        object.__setattr__(self, "op_weights", weights)
        if self.max_solution_chars < 0:
            raise ValueError(f"max_solution_chars must be >= 0 (0: no limit), got {self.max_solution_chars}")


def _literal(rng: random.Random, lo_digits: int, hi_digits: int) -> Num:
    d = rng.randint(lo_digits, hi_digits)
    return Num(rng.randint(1 if d == 1 else 10 ** (d - 1), 10**d - 1))


def _grow(rng: random.Random, n_ops: int, cfg: ArithConfig, small: bool = False) -> Node:
    if n_ops == 0:
        if small:
            return _literal(rng, 1, cfg.mul_max_digits)
        return _literal(rng, cfg.min_digits, cfg.max_digits)
    weights = (cfg.op_weights[0], cfg.op_weights[1], 0.0 if small else cfg.op_weights[2])
    op = rng.choices("+-*", weights=weights)[0] if sum(weights) > 0 else rng.choice("+-")
    if op == "*":
        # One factor is a small literal or a small one-operation sum/difference.
        small_ops = 1 if n_ops > 1 and rng.random() < 0.3 else 0
        factor = _grow(rng, small_ops, cfg, small=True)
        other = _grow(rng, n_ops - 1 - small_ops, cfg, small)
        return BinOp("*", factor, other) if rng.random() < 0.5 else BinOp("*", other, factor)
    left = rng.randint(0, n_ops - 1)
    return BinOp(op, _grow(rng, left, cfg, small), _grow(rng, n_ops - 1 - left, cfg, small))


def _within_limits(node: Node, cfg: ArithConfig) -> bool:
    small = 10**cfg.mul_max_digits
    for _, sub in subtrees(node):
        if abs(value_of(sub)) > cfg.max_abs_value:
            return False
        if (
            isinstance(sub, BinOp)
            and sub.op == "*"
            and min(abs(value_of(sub.left)), abs(value_of(sub.right))) >= small
        ):
            return False
    return True


def sample_expression(rng: random.Random, n_ops: int, config: ArithConfig | None = None) -> Node:
    """A random expression tree with exactly ``n_ops`` operations that respects the config's limits."""
    cfg = config or ArithConfig()
    if n_ops < 1:
        raise ValueError(f"n_ops must be >= 1, got {n_ops}")
    for _ in range(10_000):
        tree = _grow(rng, n_ops, cfg)
        if _within_limits(tree, cfg) and _short_enough(tree, cfg):
            return tree
    raise ValueError(
        f"could not draw a {n_ops}-operation expression within max_abs_value={cfg.max_abs_value} and "
        f"max_solution_chars={cfg.max_solution_chars}; raise them or lower max_digits"
    )


def _short_enough(tree: Node, cfg: ArithConfig) -> bool:
    if not cfg.max_solution_chars:
        return True
    budget = cfg.max_solution_chars - len(render(tree))
    return budget >= 0 and sum(len(s) + 1 for s in gold_steps(tree)) <= budget


def make_problem(expression: str | Node) -> Problem:
    """The Problem record of an expression (canonicalised), with its gold steps and split in meta."""
    node = parse(expression) if isinstance(expression, str) else expression
    text = render(node)
    n_ops = count_ops(node)
    if n_ops < 1:
        raise ValueError(f"an arith problem needs at least one operation, got {text!r}")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Problem(
        id=f"arith-{digest[:12]}",
        question=text,
        answer=str(value_of(node)),
        kind="arith",
        meta={
            "n_ops": n_ops,
            "level": level_of(n_ops),
            "split": split_of(text),
            "steps": gold_steps(node),
            "source": "reasonkit.tasks.arith",
        },
    )


def _ops_choices(cfg: ArithConfig, n_ops: int | Sequence[int] | None, level: int | None) -> list[int]:
    if n_ops is not None and level is not None:
        raise ValueError("give n_ops or level, not both")
    if level is not None:
        lo, hi = ops_of_level(level)
        choices = list(range(lo, hi + 1))
    elif n_ops is None:
        choices = list(range(cfg.min_ops, cfg.max_ops + 1))
    else:
        choices = [n_ops] if isinstance(n_ops, int) else list(n_ops)
    if not choices or any(not 1 <= k <= MAX_OPS_LIMIT for k in choices):
        raise ValueError(f"operation counts must be in 1..{MAX_OPS_LIMIT}, got {choices}")
    return choices


def generate(
    n: int,
    *,
    split: str = "train",
    seed: int = 0,
    n_ops: int | Sequence[int] | None = None,
    level: int | None = None,
    config: ArithConfig | None = None,
    unique: bool = True,
) -> list[Problem]:
    """``n`` problems of one split, deterministic in (split, seed, n_ops/level, config).

    Operation counts are drawn uniformly from ``n_ops`` (an int or a list), or the ops of ``level``,
    or ``config.min_ops..config.max_ops``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cfg = config or ArithConfig()
    choices = _ops_choices(cfg, n_ops, level)
    rng = random.Random(f"reasonkit.arith:{split}:{seed}:{choices}")
    problems: list[Problem] = []
    seen: set[str] = set()
    budget = 2000 + 200 * n
    while len(problems) < n:
        budget -= 1
        if budget < 0:
            raise ValueError(
                f"found only {len(problems)} of {n} distinct {split} problems with {choices} operations: "
                f"the space is too small; allow more digits or operations, or pass unique=False"
            )
        text = render(sample_expression(rng, rng.choice(choices), cfg))
        if split_of(text) != split or (unique and text in seen):
            continue
        seen.add(text)
        problems.append(make_problem(text))
    return problems


#: Named problem sets. "arith" is the default distribution (what the built-in model was trained on);
#: "arith-hard" (4-digit operands, 2-digit factors) is a harder split of the same task: the built-in
#: model (v1) misses 1.37 % of gold CoT test tokens there (0.14 % on "arith"; docs/tah.md) and solves 48 %.
PROBLEM_SETS: dict[str, ArithConfig] = {
    "arith": ArithConfig(),
    "arith-hard": ArithConfig(max_digits=4, mul_max_digits=2, max_abs_value=99999),
}


def problem_config(name: str) -> ArithConfig:
    """The :class:`ArithConfig` of a named problem set (``PROBLEM_SETS``)."""
    if name not in PROBLEM_SETS:
        raise ValueError(f"unknown problem set {name!r}; choose one of {sorted(PROBLEM_SETS)}")
    return PROBLEM_SETS[name]


def benchmark(
    split: str = "test", per_ops: int = 50, seed: int = 0, config: ArithConfig | None = None
) -> list[Problem]:
    """A stratified set: ``per_ops`` problems for each operation count in the config (default 1–8)."""
    cfg = config or ArithConfig()
    return [
        p
        for k in range(cfg.min_ops, cfg.max_ops + 1)
        for p in generate(per_ops, split=split, seed=seed, n_ops=k, config=cfg)
    ]


def export_jsonl(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as JSONL (``Problem.to_dict`` per line), atomically."""
    lines = [json.dumps(p.to_dict(), ensure_ascii=False, separators=(",", ":")) for p in problems]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


def load_jsonl(path: str | Path) -> list[Problem]:
    """Read a JSONL of problems; a bad line fails with the file, the line and what is wrong."""
    problems = []
    for number, obj in iter_jsonl(path):
        try:
            problems.append(Problem.from_dict(obj))
        except (KeyError, ValueError, TypeError) as exc:
            raise RecordError(f"{path}, line {number}: not a Problem record ({exc})") from exc
    return problems
