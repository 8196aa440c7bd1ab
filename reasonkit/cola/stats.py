"""The figures of a chain-of-layers search run, with 95% intervals where they are shares.

The paper's claims (arXiv 2507.07996) are about *oracle* rates — the search knows the answer key:

- ``shorter_share``: of the problems the model's own path gets right, the share for which a correct
  path with strictly fewer layers was found (paper: > 75 %);
- ``fixed_share``: of the problems it gets wrong, the share with any correct path (paper: > 60 %);
- ``oracle_accuracy``: the share with any correct path, against ``default_accuracy``.

``oracle_by_length[L]`` is the oracle accuracy with paths of at most L layers (the accuracy / depth
Pareto curve of the run). Speed figures come from ``metrics.jsonl`` (one line per round of calls).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonkit.cola.records import SearchRecord
from reasonkit.rundir import iter_jsonl


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a share (None when n = 0)."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def share(successes: int, n: int) -> dict[str, Any]:
    """``{"share", "k", "n", "ci95"}`` of ``successes`` out of ``n``."""
    return {
        "share": round(successes / n, 4) if n else None,
        "k": successes,
        "n": n,
        "ci95": wilson(successes, n),
    }


def summarize(records: Sequence[SearchRecord]) -> dict[str, Any]:
    """The run's figures (module docstring) from its per-problem records."""
    n = len(records)
    right = [r for r in records if r.default_correct]
    wrong = [r for r in records if not r.default_correct]
    shortest = [len(r.shortest_correct) for r in records if r.shortest_correct is not None]
    depth = records[0].default_length if records else 0
    longest = max((len(p) for r in records for p in r.scored), default=0)
    oracle_by_length = (
        {length: round(sum(1 for s in shortest if s <= length) / n, 4) for length in range(0, longest + 1)}
        if n
        else {}
    )
    summary: dict[str, Any] = {
        "problems": n,
        "layers": depth,
        "default_accuracy": round(len(right) / n, 4) if n else 0.0,
        "default": share(len(right), n),
        "oracle_accuracy": round(sum(r.any_correct for r in records) / n, 4) if n else 0.0,
        "oracle": share(sum(r.any_correct for r in records), n),
        "shorter_share": share(sum(r.shorter_correct for r in right), len(right)),
        "fixed_share": share(sum(r.any_correct for r in wrong), len(wrong)),
        "shortest_correct_lengths": dict(sorted(Counter(shortest).items())),
        "mean_shortest_correct": round(sum(shortest) / len(shortest), 3) if shortest else None,
        "shorter_by_length": {
            length: share(
                sum(1 for r in right if r.shortest_correct is not None and len(r.shortest_correct) <= length),
                len(right),
            )
            for length in range(max(0, depth - 4), depth)
        },
        "oracle_by_length": oracle_by_length,
        "scored_paths_per_problem": round(sum(len(r.scored) for r in records) / n, 2) if n else 0.0,
        "simulations_per_problem": round(sum(r.simulations for r in records) / n, 2) if n else 0.0,
        "by_group": _by_group(records),
    }
    return summary


def _by_group(records: Sequence[SearchRecord]) -> dict[str, dict[str, Any]]:
    key = next((k for k in ("n_ops", "level", "subject") if any(k in r.meta for r in records)), None)
    if key is None:
        return {}
    groups: dict[str, list[SearchRecord]] = {}
    for r in records:
        groups.setdefault(f"{key}={r.meta.get(key)}", []).append(r)
    return {
        name: {
            "problems": len(members),
            "default_accuracy": round(sum(r.default_correct for r in members) / len(members), 4),
            "oracle_accuracy": round(sum(r.any_correct for r in members) / len(members), 4),
            "shorter_share": share(
                sum(r.shorter_correct for r in members if r.default_correct),
                sum(r.default_correct for r in members),
            )["share"],
        }
        for name, members in sorted(groups.items())
    }


def speed(metrics_file: Path, problems: int) -> dict[str, Any]:
    """Totals over every session of a run (a resumed run has several): simulations, model calls, rows
    decoded, seconds; problems searched per minute and model calls per simulation."""
    if not metrics_file.exists():
        return {}
    last: dict[str, dict[str, Any]] = {}
    for _, row in iter_jsonl(metrics_file, tolerate_torn_tail=True):
        last[str(row.get("session"))] = row
    totals = {
        key: sum(float(row.get(key, 0)) for row in last.values())
        for key in ("seconds", "simulations", "model_calls", "rows_decoded", "decode_seconds", "searches")
    }
    seconds, simulations = totals["seconds"], totals["simulations"]
    return {
        "sessions": len(last),
        "seconds": round(seconds, 1),
        "simulations": int(simulations),
        "model_calls": int(totals["model_calls"]),
        "rows_decoded": int(totals["rows_decoded"]),
        "problems_per_minute": round(totals["searches"] / (seconds / 60), 2) if seconds else None,
        "calls_per_simulation": round(totals["model_calls"] / simulations, 4) if simulations else None,
        "rows_per_call": round(totals["rows_decoded"] / totals["model_calls"], 2)
        if totals["model_calls"]
        else None,
        "problems_in_run": problems,
    }
