"""Run many problems' searches together, one model call per distinct path per round ("path-major").

Each search is a generator program (:meth:`~reasonkit.cola.mcts.PathSearch.run`) that yields the
path its next simulation needs scored. The driver answers from the reward table at once when it can
(a cached path never reaches the model), then groups the searches still waiting by the path they
wait for and scores each group with one batched call. Searches seeded alike make the same moves
while their rewards agree, so early rounds put most problems into a handful of calls.

The same driver runs any program of this shape: random-path search, exhaustive enumeration.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Protocol

from reasonkit.cola.grammar import Path
from reasonkit.cola.table import Outcome

Program = Generator[Path, float, Any]


class RewardSource(Protocol):
    """What the driver needs from a scorer (:class:`~reasonkit.cola.scoring.PathScorer` is one)."""

    def cached(self, row: int, path: Sequence[int]) -> Outcome | None: ...

    def score(self, path: Sequence[int], rows: Sequence[int]) -> list[Outcome]: ...


def run_lockstep(
    programs: Mapping[int, Program],
    source: RewardSource,
    on_finish: Callable[[int, Any], None] | None = None,
    on_round: Callable[[], None] | None = None,
) -> dict[int, Any]:
    """Drive ``programs`` (row -> program) to the end; returns row -> what each program returned.

    ``on_finish(row, result)`` is called as each program ends (a runner writes its record there),
    ``on_round()`` after each round of model calls (progress, metrics).
    """
    results: dict[int, Any] = {}
    waiting: dict[int, Path] = {}

    def advance(row: int, reward: float | None) -> None:
        program = programs[row]
        try:
            path = next(program) if reward is None else program.send(reward)
            while (known := source.cached(row, path)) is not None:
                path = program.send(known.reward)
        except StopIteration as done:
            waiting.pop(row, None)
            results[row] = done.value
            if on_finish is not None:
                on_finish(row, done.value)
            return
        waiting[row] = path

    for row in programs:
        advance(row, None)
    while waiting:
        groups: dict[Path, list[int]] = {}
        for row, path in waiting.items():
            groups.setdefault(path, []).append(row)
        for path, rows in groups.items():
            for row, outcome in zip(rows, source.score(path, rows)):
                advance(row, outcome.reward)
        if on_round is not None:
            on_round()
    return results
