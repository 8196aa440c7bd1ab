"""How fast ``reasonkit cola search`` searches, next to a naive per-simulation ``generate`` loop.

    python -m reasonkit.evals.bench_cola                       # the table in BENCHMARKS.md, "CoLa speed"
    python -m reasonkit.evals.bench_cola --problems 4 --simulations 50

Three ways to run the same MCTS (same seed, same grammar, same per-problem token budgets) over the
same problems, one after the other in this process, so that machine load hits all of them alike:

- ``naive``: one problem at a time; every simulation calls ``HFBackend(path=...).generate`` on its
  prompt, as a straightforward implementation would (no reward cache, batch of one);
- ``cache``: one problem at a time, each (problem, path) decoded once (a revisited node and a
  transposition — another move sequence to the same path — are free), still a batch of one;
- ``lockstep``: what ``reasonkit cola search`` does — the cache, and all problems' searches driven
  together so that one decode serves every problem that needs the same path.

Prints a markdown table: seconds, problems per minute, model calls per simulation, problems per
call, the speed-up over naive, and whether the searches scored the same paths as the naive loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reasonkit.config import parse_config


@dataclass
class BenchColaConfig:
    """Time the CoLa search three ways on the built-in model (module docstring)."""

    problems: int = field(default=8, metadata={"help": "arith problems (the first N in --limit order)"})
    simulations: int = field(default=200, metadata={"help": "MCTS simulations per problem"})
    call: Literal["direct", "cot"] = field(
        default="direct",
        metadata={"help": "prompt: direct (short answers) or cot (the naive loop takes long)"},
    )
    model: str = field(default="builtin", metadata={"help": "the model (a local one)"})

    def __post_init__(self) -> None:
        if self.problems < 1 or self.simulations < 1:
            raise ValueError("--problems and --simulations must be >= 1")


def _naive(config: BenchColaConfig, backend: Any, scorer: Any, grammar: Any) -> tuple[float, int, list[Any]]:
    """Every simulation calls generate (no cache, one prompt); returns seconds, calls, scored paths."""
    from reasonkit.answers import grade_and_extract
    from reasonkit.backends.hf import HFBackend
    from reasonkit.cola.mcts import PathSearch, SearchSettings
    from reasonkit.types import SamplingParams

    backends: dict[tuple[int, ...], Any] = {}
    calls, scored = 0, []
    started = time.perf_counter()
    for row, problem in enumerate(scorer.problems):
        search = PathSearch(grammar, SearchSettings(simulations=config.simulations))
        program = search.run(memo=False)
        path = next(program)
        default_tokens: int | None = None
        try:
            while True:
                if path not in backends:
                    backends[path] = HFBackend(backend.model, backend.tokenizer, path=path, name="naive")
                budget = scorer.cap(row) if default_tokens is None else scorer.budget(row)
                params = SamplingParams(max_new_tokens=budget, stop=scorer.stop)
                [[completion]] = backends[path].generate([scorer.rendered[row]], params)
                calls += 1
                if default_tokens is None:
                    default_tokens = completion.tokens_out
                [(ok, _)] = grade_and_extract([(completion.text, problem.answer, problem.kind)])
                path = program.send(1.0 if ok else 0.0)
        except StopIteration:
            scored.append(search.scored_paths())
    return time.perf_counter() - started, calls, scored


def _cached(config: BenchColaConfig, scorer: Any, grammar: Any, together: bool) -> tuple[float, list[Any]]:
    from reasonkit.cola.lockstep import run_lockstep
    from reasonkit.cola.mcts import PathSearch, SearchSettings

    settings = SearchSettings(simulations=config.simulations)
    rows = list(range(len(scorer.problems)))
    started = time.perf_counter()
    searches = {r: PathSearch(grammar, settings) for r in rows}
    if together:
        run_lockstep({r: s.run() for r, s in searches.items()}, scorer)
    else:
        for r in rows:
            run_lockstep({r: searches[r].run()}, scorer)
    return time.perf_counter() - started, [searches[r].scored_paths() for r in rows]


def run_bench(config: BenchColaConfig) -> str:
    from reasonkit.backends.loading import load_backend
    from reasonkit.cola.grammar import LayerGrammar
    from reasonkit.cola.scoring import PathScorer
    from reasonkit.cola.search import ordered_problems

    backend = load_backend(config.model)
    problems = ordered_problems("arith", None, None, 0)[: config.problems]

    def fresh_scorer() -> PathScorer:  # an empty reward table for each setting
        return PathScorer(backend, problems, call=config.call)

    reference = fresh_scorer()
    reference.score(reference.default_path, list(range(len(problems))))  # the naive loop's budgets
    grammar = LayerGrammar(reference.num_layers)
    rows: list[tuple[str, float, int, list[Any], float]] = []
    seconds, calls, scored = _naive(config, backend, reference, grammar)
    rows.append(("naive: generate per simulation", seconds, calls, scored, float(calls)))
    for name, together in (("cache, one problem at a time", False), ("cache + lockstep (cola search)", True)):
        scorer = fresh_scorer()
        seconds, scored = _cached(config, scorer, grammar, together)
        rows.append((name, seconds, scorer.calls, scored, float(scorer.rows_decoded)))
    return _table(config, rows)


def _table(config: BenchColaConfig, rows: Sequence[tuple[str, float, int, list[Any], float]]) -> str:
    simulations = config.problems * config.simulations
    naive_seconds, naive_scored = rows[0][1], rows[0][3]
    lines = [
        f"{config.problems} arith problems, {config.simulations} simulations each, prompt `{config.call}`",
        "",
        "| setting | seconds | problems / min | model calls / simulation | problems / call | speed-up | same paths as naive |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, seconds, calls, scored, decoded in rows:
        same = sum(a == b for a, b in zip(scored, naive_scored))
        lines.append(
            f"| {name} | {seconds:.1f} | {60 * config.problems / seconds:.2f} | {calls / simulations:.3f} | "
            f"{decoded / max(calls, 1):.2f} | {naive_seconds / seconds:.1f}x | {same}/{config.problems} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    torch.set_num_threads(1)
    config = parse_config(BenchColaConfig, argv, prog="python -m reasonkit.evals.bench_cola")
    print(run_bench(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
