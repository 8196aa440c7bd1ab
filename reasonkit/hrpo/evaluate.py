"""Greedy evaluation of a policy: the kit's CoT strategy through an HFBackend that decodes with the
policy's hooks (h built with the training τ and top-k), sharded over processes under accelerate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reasonkit.kit.base import Budget
from reasonkit.kit.baselines import CoT
from reasonkit.types import Problem


def evaluate(
    backend: Any,
    problems: Sequence[Problem],
    max_new_tokens: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> list[dict[str, Any]]:
    """One record per problem of this process's shard (problem ``i`` goes to process ``i % world``):
    index, id, operation count, correct, tokens generated. ``max_new_tokens`` caps the pack's CoT budget
    (the trainer passes its rollout budget: the policy is scored at the length it was trained for)."""
    mine = [(i, p) for i, p in enumerate(problems) if i % world == rank]
    records: list[dict[str, Any]] = []
    batch = 64
    for start in range(0, len(mine), batch):
        chunk = mine[start : start + batch]
        traces = CoT().solve([p for _, p in chunk], backend, Budget(max_tokens=max_new_tokens))
        for (i, problem), trace in zip(chunk, traces):
            records.append(
                {
                    "index": i,
                    "id": problem.id,
                    "ops": problem.meta.get("n_ops"),
                    "correct": bool(trace.correct),
                    "tokens": trace.cost.tokens_out,
                }
            )
    return records
