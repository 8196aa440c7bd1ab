"""What a search found for one problem, as one JSON line of ``searches.jsonl``.

A record lists every path scored for the problem (in the order first scored, with its outcome and
length), the default path's outcome, the Pareto set (correctness against layers executed: no other
scored path is at least as correct and no longer, and better in one of the two) and the shortest
correct path. Readers of run directories (the report, the predictor's trainer, the controls) read
these records through :func:`read_records`, which names the file and line of anything malformed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonkit.cola.grammar import format_path, read_path
from reasonkit.cola.table import Outcome
from reasonkit.rundir import RecordError, iter_jsonl
from reasonkit.types import Problem

PathOutcomes = Mapping[tuple[int, ...], Outcome]


def pareto_set(scored: PathOutcomes) -> list[tuple[int, ...]]:
    """Paths no other scored path dominates (reward >= and length <=, one strictly), shortest first."""
    points = {path: (o.reward, len(path)) for path, o in scored.items()}
    front = [
        path
        for path, (reward, length) in points.items()
        if not any(r >= reward and n <= length and (r > reward or n < length) for r, n in points.values())
    ]
    return sorted(front, key=lambda p: (len(p), p))


def shortest_correct(scored: PathOutcomes) -> tuple[int, ...] | None:
    correct = [path for path, o in scored.items() if o.correct]
    return min(correct, key=lambda p: (len(p), p)) if correct else None


@dataclass(frozen=True)
class SearchRecord:
    """One problem's search result (a ``searches.jsonl`` line)."""

    problem_id: str
    default_correct: bool
    default_length: int
    scored: dict[tuple[int, ...], Outcome]  # in the order first scored
    simulations: int
    meta: dict[str, Any]

    @property
    def any_correct(self) -> bool:
        return any(o.correct for o in self.scored.values())

    @property
    def shortest_correct(self) -> tuple[int, ...] | None:
        return shortest_correct(self.scored)

    @property
    def shorter_correct(self) -> bool:
        """Whether a correct path strictly shorter than the model's own exists among the scored ones."""
        best = self.shortest_correct
        return best is not None and len(best) < self.default_length

    def to_json(self) -> dict[str, Any]:
        best = self.shortest_correct
        return {
            "problem_id": self.problem_id,
            "default_correct": self.default_correct,
            "default_length": self.default_length,
            "simulations": self.simulations,
            "n_scored": len(self.scored),
            "shortest_correct": None if best is None else format_path(best),
            "pareto": [format_path(p) for p in pareto_set(self.scored)],
            "scored": [[format_path(p), o.correct, o.tokens, o.answer] for p, o in self.scored.items()],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchRecord:
        scored = {
            read_path(str(path)): Outcome(bool(ok), None if answer is None else str(answer), int(tokens), "")
            for path, ok, tokens, answer in data["scored"]
        }
        return cls(
            problem_id=str(data["problem_id"]),
            default_correct=bool(data["default_correct"]),
            default_length=int(data["default_length"]),
            scored=scored,
            simulations=int(data["simulations"]),
            meta=dict(data.get("meta") or {}),
        )


def make_record(
    problem: Problem,
    paths: Sequence[tuple[int, ...]],
    table: PathOutcomes,
    default: tuple[int, ...],
    simulations: int,
) -> SearchRecord:
    """The record of ``problem`` from the ``paths`` its search scored and the outcomes in ``table``."""
    scored = {path: table[path] for path in paths}
    reference = table[default]
    meta: dict[str, Any] = {k: problem.meta[k] for k in ("n_ops", "level", "subject") if k in problem.meta}
    return SearchRecord(problem.id, reference.correct, len(default), scored, simulations, meta)


def read_records(path: str | Path) -> list[SearchRecord]:
    """The records of a ``searches.jsonl``; RecordError naming the file and line of a malformed one."""
    records = []
    for number, data in iter_jsonl(path, tolerate_torn_tail=True):
        try:
            records.append(SearchRecord.from_json(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(
                f"{path}, line {number}: not a search record ({type(exc).__name__}: {exc}); this file is "
                "written by `reasonkit cola search` — rerun the search into a new --out"
            ) from None
    return records
