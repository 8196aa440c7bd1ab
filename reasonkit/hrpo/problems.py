"""Problems for ``train-hrpo`` and the reward of a completion.

Training draws from arith's train split at the chosen operation counts (or a benchmark loaded by
:mod:`reasonkit.evals.loaders`, shuffled with the seed); step ``s`` uses prompts ``s·P .. s·P + P − 1``
of that fixed stream, so a resumed run and every process see the same prompts. The test set is
arith's test split (hash-disjoint from train) drawn with seed 0 whatever the training seed, so every
arm and seed is scored on the same problems.

Reward (reference ``utils.py:39-62``): 1 iff the answer delimiter appears exactly once in the
completion and the answer from the delimiter on is correct (graded by :mod:`reasonkit.answers`), else 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from reasonkit.answers import grade_many
from reasonkit.hrpo.config import HRPOConfig
from reasonkit.hrpo.delimiter import count_delimiters
from reasonkit.types import Problem

#: the test problems' seed: the same test set for every arm and training seed
TEST_SEED = 0


def training_stream(cfg: HRPOConfig) -> list[Problem]:
    """Every prompt the run will use, in order (a benchmark smaller than that repeats, reshuffled)."""
    needed = cfg.steps * cfg.prompts_per_step
    if cfg.bench == "arith":
        from reasonkit.tasks import arith

        return arith.generate(needed, split="train", seed=cfg.seed, n_ops=list(cfg.ops))
    pool = _benchmark(cfg.bench, cfg.data)
    stream: list[Problem] = []
    epoch = 0
    while len(stream) < needed:
        order = list(pool)
        random.Random(f"reasonkit.hrpo:{cfg.seed}:{epoch}").shuffle(order)
        stream += order
        epoch += 1
    return stream[:needed]


def evaluation_problems(cfg: HRPOConfig, split: str, count: int) -> list[Problem]:
    """``count`` greedy-evaluation problems: arith's ``split`` at the run's operation counts, or the
    first ``count`` of ``--test-bench`` (default ``--bench``)."""
    if count == 0:
        return []
    bench = cfg.test_bench or cfg.bench
    if bench == "arith":
        from reasonkit.tasks import arith

        return arith.generate(count, split=split, seed=TEST_SEED, n_ops=list(cfg.ops))
    return _benchmark(bench, cfg.data)[:count]


def _benchmark(name: str, data: str | None) -> list[Problem]:
    from reasonkit.evals.loaders import load

    problems = load(name, data)
    if not problems:
        raise ValueError(f"benchmark {name!r} has no problems; check --bench and --data")
    return problems


def rewards(
    texts: Sequence[str], problems: Sequence[Problem], delimiter: str
) -> list[tuple[float, bool, bool]]:
    """(reward, answer correct, delimiter exactly once) per completion; ``problems[i]`` is the
    problem of ``texts[i]``."""
    once = [count_delimiters(text, delimiter) == 1 for text in texts]
    answers = [text[text.find(delimiter) :] if delimiter in text else "" for text in texts]
    correct = grade_many([(answer, p.answer, p.kind) for answer, p in zip(answers, problems)])
    return [(float(ok and single), ok, single) for ok, single in zip(correct, once)]
