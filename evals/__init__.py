"""Evaluation harness: AIME / MATH / GPQA / GSM8K / arith loaders, prompts, metrics, runner and reports.

    >>> from reasonkit.evals import load
    >>> problems = load("math500")            # data from --data, $REASONKIT_DATA or ../shared/data
    >>> len(problems), problems[0].kind       # doctest: +SKIP
    (500, 'math')

Everything resolves lazily: importing reasonkit.evals loads neither torch nor Math-Verify.
docs/evals.md documents the grading rules, prompts and metrics, and how they match lighteval,
lm-evaluation-harness and the Qwen2.5-Math evaluator.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

if __name__ != "reasonkit.evals":  # imported as bare `evals` from the clone root
    from reasonkit._shadow import defer_to_installed

    defer_to_installed(__name__, __file__)

_LAZY: dict[str, str] = {
    "load": "reasonkit.evals.loaders",
    "data_root": "reasonkit.evals.loaders",
    "DatasetError": "reasonkit.evals.loaders",
    "NAMES": "reasonkit.evals.loaders",
    "load_gpqa": "reasonkit.evals.gpqa",
    "shuffle_options": "reasonkit.evals.gpqa",
    "prompt_for": "reasonkit.evals.prompts",
    "benchmark_pack": "reasonkit.evals.prompts",
    "load_prompts": "reasonkit.evals.prompts",
    "accuracy": "reasonkit.evals.metrics",
    "pass_at_k": "reasonkit.evals.metrics",
    "maj_at_k": "reasonkit.evals.metrics",
    "avg_at_n": "reasonkit.evals.metrics",
    "EvalConfig": "reasonkit.evals.runner",
    "run_eval": "reasonkit.evals.runner",
    "eval_command": "reasonkit.evals.runner",
    "compare_command": "reasonkit.evals.report",
    "compare_runs": "reasonkit.evals.report",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
