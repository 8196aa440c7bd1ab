"""Problems to train and validate a navigator on, and the paper's "hard problems only" filter.

A task is ``arith`` (the built-in generator, with its own train / validation / test splits), a
benchmark name :func:`reasonkit.evals.load` knows (``math500``, ``gsm8k``, ``gpqa``, ``aime24`` …),
or a JSONL file of Problem records. Benchmarks have no training split, so their problems are split
by a hash of the problem id: 80 % ``train``, 20 % ``validation`` (the same problem always lands on
the same side, whatever else the file holds). RL-of-Thoughts trains only on problems the model gets
wrong with a direct prompt (arXiv 2505.14140, Sec. 4.1): :func:`hard_problems`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonkit.backends.base import LanguageModel
from reasonkit.rundir import RecordError, iter_jsonl
from reasonkit.types import Problem

SPLITS = ("train", "validation", "test")
BENCHMARKS = ("math500", "gsm8k", "gpqa", "aime24", "aime25", "amc23")
HELD_OUT_PERCENT = 20


def _held_out(problem_id: str) -> bool:
    return int(hashlib.sha256(problem_id.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT


def load_task(task: str, split: str, n: int | None = None, seed: int = 0) -> list[Problem]:
    """``n`` problems of ``task`` from ``split`` (all of the split when ``n`` is None; arith needs n).

    For benchmarks and JSONL files, ``validation`` and ``test`` name the same held-out 20 %.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n is not None and n < 1:
        raise ValueError(f"the number of problems must be >= 1, got {n}")
    from reasonkit.tasks import arith

    if task in arith.PROBLEM_SETS:
        return arith.generate(n or 500, split=split, seed=seed, config=arith.problem_config(task))
    problems = _load_file(Path(task)) if task.endswith(".jsonl") else _load_benchmark(task)
    chosen = [p for p in problems if _held_out(p.id) == (split != "train")]
    if not chosen:
        raise ValueError(f"task {task!r} has no problems in split {split!r} ({len(problems)} in all)")
    if n is not None and n < len(chosen):
        chosen = random.Random(f"{task}:{split}:{seed}").sample(chosen, n)
    return chosen


def _load_file(path: Path) -> list[Problem]:
    if not path.is_file():
        raise ValueError(f"task file {path} does not exist; give a JSONL file of Problem records")
    problems = []
    for line, row in iter_jsonl(path):
        try:
            problems.append(Problem.from_dict(row))
        except (KeyError, ValueError, TypeError) as exc:
            raise RecordError(
                f"{path}, line {line}: not a Problem record ({type(exc).__name__}: {exc}); "
                "each line needs at least id, question, answer and kind"
            ) from None
    if not problems:
        raise ValueError(f"task file {path} holds no problems")
    return problems


def _load_benchmark(name: str) -> list[Problem]:
    from reasonkit.evals.loaders import load  # benchmark data sits below the methods (docs/ARCHITECTURE.md)

    try:
        return list(load(name))
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"unknown task {name!r} ({exc}); use arith, arith-hard, one of {', '.join(BENCHMARKS)}, or a .jsonl file"
        ) from None


def hard_problems(
    problems: Sequence[Problem], backend: LanguageModel, pack: Any = None, batch_size: int = 64
) -> list[Problem]:
    """The problems ``backend`` answers wrongly with a direct prompt (the paper's training set)."""
    from reasonkit.kit.baselines import Direct

    direct = Direct(pack=pack)
    hard: list[Problem] = []
    for start in range(0, len(problems), batch_size):
        batch = list(problems[start : start + batch_size])
        hard += [p for p, t in zip(batch, direct.solve(batch, backend)) if not t.correct]
    return hard
