"""Evaluation metrics: accuracy (with its standard error), unbiased pass@k, maj@k, avg@n, breakdowns.

Definitions, as lighteval / lm-evaluation-harness / the Qwen2.5-Math evaluator report them:

- ``accuracy``: the share of graded problems answered correctly (pass@1 of the strategy's answer).
- ``pass@k``: the chance that at least one of k samples drawn without replacement from n is
  correct, estimated without bias from c correct out of n (Chen et al. 2021, "Evaluating Large
  Language Models Trained on Code"): ``1 - C(n-c, k) / C(n, k)``.
- ``maj@k``: correctness of the majority answer among the first k samples (ties go to the answer
  seen first, as in :func:`reasonkit.kit.baselines.majority_vote`; samples with no answer do not vote).
- ``avg@n``: mean correctness over the n samples of a problem (AIME is commonly reported as avg@16-64
  at temperature 0.6).
All are averaged over problems.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from reasonkit.kit.baselines import majority_vote


def accuracy(correct: Iterable[bool | None]) -> float | None:
    """Share of True among graded verdicts (``None`` = ungraded, left out); None when none is graded."""
    graded = [bool(c) for c in correct if c is not None]
    return sum(graded) / len(graded) if graded else None


def stderr(p: float | None, n: int) -> float | None:
    """Binomial standard error of an accuracy ``p`` over ``n`` problems (95% CI ≈ ±1.96 stderr)."""
    if p is None or n < 2:
        return None
    return math.sqrt(p * (1 - p) / (n - 1))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct among ``n`` samples: ``1 - C(n-c, k) / C(n, k)``.

    Computed as a product so large n does not overflow: ``1 - prod_{i=n-c+1..n} (1 - k / i)``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def avg_at_n(correct: Sequence[bool]) -> float:
    """Mean correctness over one problem's samples."""
    if not correct:
        raise ValueError("avg_at_n needs at least one sample")
    return sum(map(bool, correct)) / len(correct)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the majority answer of the first ``k`` samples is correct (no answer at all: False)."""
    if len(answers) != len(correct):
        raise ValueError(f"maj_at_k: {len(answers)} answers but {len(correct)} verdicts")
    if not 1 <= k <= len(answers):
        raise ValueError(f"maj_at_k needs 1 <= k <= {len(answers)} samples, got k={k}")
    winner, _ = majority_vote(list(answers[:k]))
    return winner is not None and bool(correct[winner])


def ks_for(n: int) -> list[int]:
    """The k values worth reporting for n samples: 1, powers of two below n, and n."""
    ks = [1]
    while ks[-1] * 2 < n:
        ks.append(ks[-1] * 2)
    return sorted(set([*ks, n]))


def sample_metrics(samples: Sequence[tuple[Sequence[str | None], Sequence[bool]]]) -> dict[str, Any]:
    """avg@n, pass@k and maj@k over problems, each given as (answers, verdicts) of its n samples.

    Problems must share one n (the run's sample count); the k values are :func:`ks_for` of it.
    """
    if not samples:
        return {}
    sizes = {len(verdicts) for _, verdicts in samples}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            f"every problem needs the same positive number of samples, got sizes {sorted(sizes)}"
        )
    n = sizes.pop()
    out: dict[str, Any] = {"n_samples": n, f"avg@{n}": _mean(avg_at_n(v) for _, v in samples)}
    for k in ks_for(n):
        out[f"pass@{k}"] = _mean(pass_at_k(n, sum(map(bool, v)), k) for _, v in samples)
    for k in ks_for(n):
        out[f"maj@{k}"] = _mean(float(maj_at_k(a, v, k)) for a, v in samples)
    return out


def breakdown(rows: Iterable[tuple[Hashable, bool | None]]) -> dict[str, dict[str, Any]]:
    """Accuracy per group from ``(group, verdict)`` rows, groups in sorted order (levels 1..5 …)."""
    groups: dict[Hashable, list[bool | None]] = {}
    for group, verdict in rows:
        groups.setdefault(group, []).append(verdict)
    out: dict[str, dict[str, Any]] = {}
    for group in sorted(groups, key=lambda g: (isinstance(g, str), g)):
        verdicts = groups[group]
        acc = accuracy(verdicts)
        out[str(group)] = {"n": len(verdicts), "correct": sum(1 for v in verdicts if v), "accuracy": acc}
    return out


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)
