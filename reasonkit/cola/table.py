"""The reward table: every (problem, layer path) outcome a search has computed, kept and persisted.

MCTS revisits paths all the time (a move sequence and a different one can build the same path, and
terminal nodes are selected again), so an outcome is computed once per (problem, path) and looked
up afterwards. The table doubles as the run directory's record of work: each new outcome is one line
of ``evaluations.jsonl``, appended as it is computed, so an interrupted search resumes without
decoding anything twice — the search itself is deterministic given its rewards, so replaying it over
the table retraces the same tree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reasonkit.cola.grammar import format_path, read_path
from reasonkit.rundir import JsonlAppender, RecordError, iter_jsonl


@dataclass(frozen=True)
class Outcome:
    """What the model did under one path: graded ``correct``, the ``answer`` extracted, the ``tokens``
    generated and why it stopped (``finish``: "stop" or "length")."""

    correct: bool
    answer: str | None
    tokens: int
    finish: str

    @property
    def reward(self) -> float:
        return 1.0 if self.correct else 0.0


class RewardTable:
    """Outcomes keyed by (problem id, path); with ``path`` given, loaded from and appended to that JSONL."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._outcomes: dict[tuple[str, tuple[int, ...]], Outcome] = {}
        self._file: IO[str] | None = None
        if path is not None:
            path = Path(path)
            if path.exists():
                for number, record in iter_jsonl(path, tolerate_torn_tail=True):
                    self._outcomes[_key(record, path, number)] = _outcome(record, path, number)
            JsonlAppender(path).close()  # creates the file and drops a torn last line
            self._file = path.open("a", encoding="utf-8")

    def get(self, problem_id: str, path: tuple[int, ...]) -> Outcome | None:
        return self._outcomes.get((problem_id, path))

    def put(self, problem_id: str, path: tuple[int, ...], outcome: Outcome) -> None:
        self.put_many([(problem_id, path, outcome)])

    def put_many(self, entries: Sequence[tuple[str, tuple[int, ...], Outcome]]) -> None:
        """Add outcomes (a known key keeps its first outcome); new ones are appended to the file with one
        flush, so a batch of a thousand rows costs one disk sync, not a thousand."""
        lines = []
        for problem_id, path, outcome in entries:
            key = (problem_id, tuple(path))
            if key in self._outcomes:
                continue
            self._outcomes[key] = outcome
            lines.append(
                json.dumps(
                    {
                        "problem_id": problem_id,
                        "path": format_path(path),
                        "correct": outcome.correct,
                        "answer": outcome.answer,
                        "tokens": outcome.tokens,
                        "finish": outcome.finish,
                    },
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
            )
        if self._file is not None and lines:
            self._file.write("".join(line + "\n" for line in lines))
            self._file.flush()
            os.fsync(self._file.fileno())

    def of_problem(self, problem_id: str) -> dict[tuple[int, ...], Outcome]:
        return {path: o for (pid, path), o in self._outcomes.items() if pid == problem_id}

    def __len__(self) -> int:
        return len(self._outcomes)

    def __iter__(self) -> Iterator[tuple[str, tuple[int, ...], Outcome]]:
        for (pid, path), outcome in self._outcomes.items():
            yield pid, path, outcome

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _key(record: dict[str, Any], file: Path, line: int) -> tuple[str, tuple[int, ...]]:
    try:
        return str(record["problem_id"]), read_path(str(record["path"]))
    except (KeyError, ValueError) as exc:
        raise RecordError(
            f"{file}, line {line}: not an evaluation record ({exc}); delete the file to recompute it"
        ) from None


def _outcome(record: dict[str, Any], file: Path, line: int) -> Outcome:
    try:
        correct, tokens = record["correct"], record["tokens"]
        if not isinstance(correct, bool) or not isinstance(tokens, int):
            raise ValueError("'correct' must be true/false and 'tokens' a whole number")
        answer = record.get("answer")
        return Outcome(
            correct, None if answer is None else str(answer), tokens, str(record.get("finish", ""))
        )
    except (KeyError, ValueError) as exc:
        raise RecordError(
            f"{file}, line {line}: not an evaluation record ({exc}); delete the file to recompute it"
        ) from None
