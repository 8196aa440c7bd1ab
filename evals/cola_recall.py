"""``reasonkit eval cola-recall RUN``: score the whole path space on the first searched problems; MCTS recall.

MCTS scores a few dozen of the grammar's paths per problem (15,595 for an 8-layer model). This runner
scores *every* path for the first ``--problems`` problems of a search run — path-major, one model
call per path with all problems in its batch, resumable through the run's reward table — and asks
how much of the exhaustive optimum the search found:

- ``found_any``: of the problems some path answers correctly, the share where MCTS found a correct path;
- ``found_shortest``: the share where MCTS found a correct path as short as the shortest one there is;
- the oracle rates (shorter path, fixed wrong answer) of MCTS next to the exhaustive ones.

Writes ``RUN/recall.json`` (with every problem's exhaustive figures) and the report's recall section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.cola.stats import share


@dataclass
class RecallConfig:
    """Exhaustive enumeration against MCTS: reasonkit eval cola-recall RUN --problems 30"""

    run: str = field(default="", metadata={"help": "run directory of `reasonkit cola search`"})
    problems: int = field(
        default=30, metadata={"help": "the first N searched problems get every path scored"}
    )
    batch_size: int = field(default=64, metadata={"help": "rows per model call"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the policy)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if not self.run:
            raise ValueError("give the search run directory: reasonkit eval cola-recall RUN")
        if self.problems < 1 or self.batch_size < 1:
            raise ValueError("--problems and --batch-size must be >= 1")


def run_recall(config: RecallConfig, backend: Any = None) -> dict[str, Any]:
    from reasonkit.cola.report import write_run_report
    from reasonkit.cola.search import load_run, run_scorer, select_problems
    from reasonkit.progress import progress_bar
    from reasonkit.rundir import atomic_write_json, claim

    run = Path(config.run)
    search, records = load_run(run)
    if len(records) < config.problems:
        raise ValueError(
            f"{run} holds {len(records)} searched problems, fewer than --problems {config.problems}"
        )
    records = records[: config.problems]
    by_id = {p.id: p for p in select_problems(search)}
    problems = [by_id[r.problem_id] for r in records]
    backend = backend if backend is not None else search.load(search.model, local={"threads": config.threads})
    with claim(run, {}, what="CoLa search"):
        scorer = run_scorer(run, search, problems, backend, config.batch_size)
        grammar = search.grammar(scorer.num_layers)
        paths = grammar.enumerate_paths()
        rows = list(range(len(problems)))
        scorer.score(scorer.default_path, rows)
        todo = [p for p in paths if any(scorer.cached(r, p) is None for r in rows)]
        with progress_bar(total=len(paths), initial=len(paths) - len(todo), desc="all paths", unit="path",
                          enabled=config.progress) as bar:  # fmt: skip
            for path in todo:
                scorer.score(path, rows)
                bar.update(1)
        scorer.table.close()
        exhaustive = [{p: scorer.cached(r, p) for p in paths} for r in rows]
        summary = summarize_recall(records, exhaustive, scorer.num_layers)
        summary.update({"paths": len(paths), "call": search.call, "model_calls": scorer.calls})
        atomic_write_json(run / "recall.json", summary)
        write_run_report(run)
    return summary


def summarize_recall(
    records: Sequence[Any], exhaustive: Sequence[dict[tuple[int, ...], Any]], layers: int
) -> dict[str, Any]:
    """Exhaustive against MCTS figures, per problem and overall (module docstring)."""
    per_problem = []
    for record, outcomes in zip(records, exhaustive):
        correct = [p for p, o in outcomes.items() if o.correct]
        best = min(map(len, correct)) if correct else None
        found = record.shortest_correct
        per_problem.append(
            {
                "problem_id": record.problem_id,
                "default_correct": record.default_correct,
                "correct_paths": len(correct),
                "shortest_correct": best,
                "mcts_shortest_correct": None if found is None else len(found),
                "mcts_scored": len(record.scored),
            }
        )
    solvable = [p for p in per_problem if p["shortest_correct"] is not None]
    both = [p for p in solvable if p["mcts_shortest_correct"] is not None]
    right = [p for p in per_problem if p["default_correct"]]
    wrong = [p for p in per_problem if not p["default_correct"]]

    def rates(length_key: str) -> dict[str, Any]:
        return {
            "oracle": share(sum(p[length_key] is not None for p in per_problem), len(per_problem)),
            "shorter_share": share(sum((p[length_key] or layers + 1) < layers for p in right), len(right)),
            "fixed_share": share(sum(p[length_key] is not None for p in wrong), len(wrong)),
        }

    excess = [p["mcts_shortest_correct"] - p["shortest_correct"] for p in both]
    return {
        "problems": len(per_problem),
        "exhaustive": rates("shortest_correct"),
        "mcts": rates("mcts_shortest_correct"),
        "found_any": share(len(both), len(solvable)),
        "found_shortest": share(sum(e == 0 for e in excess), len(solvable)),
        "mean_excess_layers": round(sum(excess) / len(excess), 3) if excess else None,
        "mean_correct_paths": round(sum(p["correct_paths"] for p in per_problem) / len(per_problem), 1),
        "per_problem": per_problem,
    }


def recall_command(argv: Sequence[str]) -> int:
    from reasonkit.config import parse_config

    args = list(argv)
    if args and not args[0].startswith("-"):
        args = ["--run", *args]
    config = parse_config(RecallConfig, args, prog="reasonkit eval cola-recall")
    summary = run_recall(config)
    print(
        f"{summary['problems']} problems x {summary['paths']} paths: MCTS found a correct path for "
        f"{summary['found_any']['k']}/{summary['found_any']['n']} solvable problems, the shortest for "
        f"{summary['found_shortest']['k']}"
    )
    return 0
