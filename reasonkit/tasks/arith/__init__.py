"""The arith task: multi-step integer arithmetic with gold steps and a teacher for every RLoT block.

The built-in model of reasonkit is trained on this task (ARCHITECTURE.md, "The embedded default").

    >>> from reasonkit.tasks import arith
    >>> arith.evaluate("3+4*(2-5)")
    -9
    >>> p = arith.make_problem("3+4*(2-5)")
    >>> p.meta["steps"]
    ['2-5=-3|3+4*(-3)', '4*(-3)=-12|3+(-12)', '3+(-12)=-9|-9']
    >>> problems = arith.benchmark("test", per_ops=5)      # 5 per operation count, 1..8
    >>> pairs = arith.training_examples("train", n=100, seed=0)  # (prompt, target) for the model

Modules: ``expr`` (safe evaluator, trees), ``steps`` (step format and checks), ``generate``
(problems, splits, JSONL), ``teacher`` (block targets), ``corrupt`` (injected mistakes),
``training`` (states and training pairs). docs/arith.md has every rule.
"""

from __future__ import annotations

from reasonkit.tasks.arith import teacher
from reasonkit.tasks.arith.corrupt import CORRUPTION_KINDS, corrupt_step
from reasonkit.tasks.arith.expr import ArithExpressionError, count_ops, evaluate, parse, render
from reasonkit.tasks.arith.generate import (
    PROBLEM_SETS,
    SPLITS,
    ArithConfig,
    benchmark,
    export_jsonl,
    generate,
    level_of,
    load_jsonl,
    make_problem,
    problem_config,
    sample_expression,
    split_of,
)
from reasonkit.tasks.arith.steps import canonical_step, check_step, gold_steps, parse_step
from reasonkit.tasks.arith.training import (
    DEFAULT_MIXTURE,
    ArithState,
    corrupted_states,
    sample_state,
    training_examples,
)

__all__ = [
    "CORRUPTION_KINDS",
    "DEFAULT_MIXTURE",
    "PROBLEM_SETS",
    "SPLITS",
    "ArithConfig",
    "ArithExpressionError",
    "ArithState",
    "benchmark",
    "canonical_step",
    "check_step",
    "corrupt_step",
    "corrupted_states",
    "count_ops",
    "evaluate",
    "export_jsonl",
    "generate",
    "gold_steps",
    "level_of",
    "load_jsonl",
    "make_problem",
    "parse",
    "parse_step",
    "problem_config",
    "render",
    "sample_expression",
    "sample_state",
    "split_of",
    "teacher",
    "training_examples",
]
