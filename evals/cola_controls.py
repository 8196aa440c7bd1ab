"""``reasonkit eval cola-controls RUN``: the honest controls of a chain-of-layers search, same model calls.

The search's rates are oracle rates: it tries K paths per problem and keeps any that the answer key
accepts. Two controls get the same K per problem (K = the distinct paths the search scored, each
one model call) and are graded the same way:

- ``sampling``: pass@K of K temperature samples on the model's own path (same token budgets);
- ``random paths``: the default path plus K - 1 distinct paths drawn uniformly from the grammar
  (the search's own, so skip-only runs draw skip-only paths). Every problem walks one shared random
  order (seeded), so the controls batch path-major like the search.

The method is useful only where it beats both; ``controls.json`` carries a verdict that says which,
with the paired counts, and the run's report.md gets the table.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.cola.records import SearchRecord
from reasonkit.cola.stats import share


@dataclass
class ControlsConfig:
    """Controls with the search's budget: reasonkit eval cola-controls RUN"""

    run: str = field(default="", metadata={"help": "run directory of `reasonkit cola search`"})
    problems: int | None = field(
        default=None,
        metadata={"help": "control only the first N records of searches.jsonl, in the order the searches "
                          "finished (default: all; MCTS is compared on the same N)"},
    )  # fmt: skip
    temperature: float = field(default=0.7, metadata={"help": "temperature of the pass@K samples"})
    seed: int = field(default=0, metadata={"help": "seed of the samples and of the random path order"})
    batch_size: int = field(default=64, metadata={"help": "rows per model call"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: the policy)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        if not self.run:
            raise ValueError("give the search run directory: reasonkit eval cola-controls RUN")
        if self.temperature <= 0 or self.batch_size < 1:
            raise ValueError("--temperature must be > 0 and --batch-size >= 1")
        if self.problems is not None and self.problems < 1:
            raise ValueError(f"--problems must be >= 1, got {self.problems}")


def random_order(grammar: Any, seed: int, limit: int = 200_000) -> list[tuple[int, ...]]:
    """Every path of the grammar but the default, in one seeded random order (a uniform draw without
    replacement for every prefix)."""
    paths = [p for p in grammar.enumerate_paths(limit=limit) if p != grammar.default_path]
    random.Random(seed).shuffle(paths)
    return paths


def run_controls(config: ControlsConfig, backend: Any = None) -> dict[str, Any]:
    from reasonkit.cola.report import write_run_report
    from reasonkit.cola.search import load_run, run_scorer, select_problems
    from reasonkit.progress import progress_bar
    from reasonkit.rundir import atomic_write_json, claim

    run = Path(config.run)
    search, records = load_run(run)
    records = records[: config.problems] if config.problems is not None else records
    by_id = {p.id: p for p in select_problems(search)}
    missing = [r.problem_id for r in records if r.problem_id not in by_id]
    if missing:
        raise ValueError(
            f"{run}: {len(missing)} searched problems are not in the benchmark any more (e.g. {missing[:2]})"
        )
    problems = [by_id[r.problem_id] for r in records]
    budgets = [len(r.scored) for r in records]  # model calls the search spent per problem
    backend = backend if backend is not None else search.load(search.model, local={"threads": config.threads})
    with claim(run, {}, what="CoLa search"):
        scorer = run_scorer(run, search, problems, backend, config.batch_size)
        grammar = search.grammar(scorer.num_layers)
        order = random_order(grammar, config.seed)
        rows = list(range(len(problems)))
        scorer.score(scorer.default_path, rows)
        random_correct: dict[int, list[tuple[int, ...]]] = {r: [] for r in rows}
        with progress_bar(
            total=max(budgets) - 1 + len(rows), desc="controls", enabled=config.progress
        ) as bar:
            for k, path in enumerate(order[: max(budgets) - 1]):
                wanting = [r for r in rows if budgets[r] - 1 > k]
                for r, outcome in zip(wanting, scorer.score(path, wanting)):
                    if outcome.correct:
                        random_correct[r].append(path)
                bar.update(1)
            samples = []
            for r in rows:  # one row at a time: each problem draws its own K samples
                samples.append(scorer.sample([r], budgets[r], config.temperature, config.seed)[0])
                bar.update(1)
        scorer.table.close()
        default = [scorer.cached(r, scorer.default_path) for r in rows]
        summary = _summarize(records, default, random_correct, samples, budgets, scorer.num_layers)
        summary.update({"problems": len(records), "temperature": config.temperature, "seed": config.seed})
        atomic_write_json(run / "controls.json", summary)
        write_run_report(run)
    return summary


def _summarize(
    records: Sequence[SearchRecord],
    default: Sequence[Any],
    random_correct: dict[int, list[tuple[int, ...]]],
    samples: Sequence[Sequence[Any]],
    budgets: Sequence[int],
    layers: int,
) -> dict[str, Any]:
    right = [r for r, d in enumerate(default) if d.correct]
    wrong = [r for r, d in enumerate(default) if not d.correct]
    n = len(records)
    mcts_any = [rec.any_correct for rec in records]
    random_any = [default[r].correct or bool(random_correct[r]) for r in range(n)]
    sample_any = [any(o.correct for o in samples[r]) for r in range(n)]
    calls = round(sum(budgets) / n, 2)
    methods = {
        "MCTS (the search)": {
            "calls_per_problem": calls,
            "oracle": share(sum(mcts_any), n),
            "fixed_share": share(sum(records[r].any_correct for r in wrong), len(wrong)),
            "shorter_share": share(sum(records[r].shorter_correct for r in right), len(right)),
        },
        "random paths (same K)": {
            "calls_per_problem": calls,
            "oracle": share(sum(random_any), n),
            "fixed_share": share(sum(random_any[r] for r in wrong), len(wrong)),
            "shorter_share": share(
                sum(any(len(p) < layers for p in random_correct[r]) for r in right), len(right)
            ),
        },
        "pass@K sampling on the default path": {
            "calls_per_problem": calls,
            "oracle": share(sum(sample_any), n),
            "fixed_share": share(sum(sample_any[r] for r in wrong), len(wrong)),
            "shorter_share": None,
        },
    }
    paired = {
        "wrong fixed by MCTS only, vs random": sum(mcts_any[r] and not random_any[r] for r in wrong),
        "wrong fixed by random only, vs MCTS": sum(random_any[r] and not mcts_any[r] for r in wrong),
        "wrong fixed by MCTS only, vs sampling": sum(mcts_any[r] and not sample_any[r] for r in wrong),
        "wrong fixed by sampling only, vs MCTS": sum(sample_any[r] and not mcts_any[r] for r in wrong),
    }
    return {
        "note": f"The first {n} records of searches.jsonl. K = the distinct paths the search scored for each problem (mean {calls}); every row spends "
        "K model calls per problem and is graded with the answer key (oracle).",
        "methods": methods,
        "paired": paired,
        "verdict": _verdict(methods, paired),
    }


def _verdict(methods: dict[str, Any], paired: dict[str, int]) -> str:
    mcts, rand, samp = (methods[k]["fixed_share"]["share"] for k in methods)
    if mcts is None:
        return "No originally wrong problems: the controls have nothing to compare on the wrong side."
    parts = []
    for name, other in (("random paths", rand), ("pass@K sampling", samp)):
        if other is None:
            continue
        word = "beats" if mcts > other else "does not beat"
        parts.append(f"MCTS {word} {name} at fixing wrong answers ({mcts:.3f} vs {other:.3f})")
    shorter_m, shorter_r = (methods[k]["shorter_share"]["share"] for k in list(methods)[:2])
    if shorter_m is not None and shorter_r is not None:
        word = "beats" if shorter_m > shorter_r else "does not beat"
        parts.append(
            f"it {word} random paths at finding shorter correct paths ({shorter_m:.3f} vs {shorter_r:.3f})"
        )
    counts = "; ".join(f"{k}: {v}" for k, v in paired.items())
    return "; ".join(parts) + f". Paired counts on the originally wrong problems: {counts}."


def controls_command(argv: Sequence[str]) -> int:
    from reasonkit.config import parse_config

    args = list(argv)
    if args and not args[0].startswith("-"):
        args = ["--run", *args]
    config = parse_config(ControlsConfig, args, prog="reasonkit eval cola-controls")
    summary = run_controls(config)
    print(summary["verdict"])
    return 0
