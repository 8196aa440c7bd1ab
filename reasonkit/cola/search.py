"""``reasonkit cola search``: chain-of-layers MCTS over a benchmark, into a resumable run directory.

    reasonkit cola search --model builtin --bench arith --limit 200 --out runs/cola-arith
    reasonkit cola search --model meta-llama/Llama-3.2-1B-Instruct --bench gsm8k --limit 50 \\
        --call direct --max-new-tokens 16 --out runs/cola-llama

Every problem gets its own MCTS (:mod:`.mcts`, the paper's defaults), all problems run together so
that each path is scored for every problem needing it in one batched call (:mod:`.lockstep`). The
run directory (``claim``: one run, one process; rerun the command to resume):

    run.json              the settings that define the run (a rerun must match them)
    evaluations.jsonl     every (problem, path) outcome computed, appended as computed (the reward
                          table: a resumed search replays its tree from it without model calls)
    searches.jsonl        one record per finished problem (.records): every scored path, Pareto set
    trees/ID.graphml      each problem's search tree (networkx DiGraph as GraphML)
    metrics.jsonl         one line per round of model calls: simulations, calls, rows, seconds
    summary.json, report.md, shortest_correct_lengths.png, pareto.png   (.report)
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reasonkit.backends.options import BackendOptions
from reasonkit.cola.grammar import LayerGrammar
from reasonkit.cola.mcts import PathSearch, SearchSettings
from reasonkit.types import Problem

MOVES = {"both": ("skip", "keep", "repeat"), "skip": ("skip", "keep"), "repeat": ("keep", "repeat")}
#: config fields that may change when a run resumes (everything else defines the run)
RESUMABLE = frozenset(
    {"out", "limit", "progress", "trees", "batch_size", "threads", "request_timeout", "max_retries"}
)


@dataclass
class SearchConfig(BackendOptions):
    """Chain-of-layers search (arXiv 2507.07996): reasonkit cola search --model builtin --bench arith --out DIR"""

    out: str = field(default="", metadata={"help": "run directory (created; rerun the command to resume)"})
    bench: str = field(
        default="arith",
        metadata={"help": "arith, math500, gsm8k, gpqa_diamond, …, or a .jsonl file of problems"},
    )
    limit: int | None = field(
        default=None,
        metadata={
            "help": "search only N problems (arith: spread evenly over operation counts, as eval does)"
        },
    )
    split: str | None = field(default=None, metadata={"help": "split of arith or of an HF dataset"})
    data: str | None = field(default=None, metadata={"help": "data folder or file (default $REASONKIT_DATA)"})
    seed: int = field(default=0, metadata={"help": "seed of the problem order (arith) and of every search"})
    filter: tuple[str, ...] = field(
        default=(),
        metadata={"help": "keep only problems whose metadata KEY equals VALUE, e.g. --filter n_ops=1 "
                          "(arith), level=5 (math500); applied before --limit"},
    )  # fmt: skip
    call: Literal["cot", "direct"] = field(
        default="cot",
        metadata={"help": "the prompt that asks the question: cot (the model's chain of thought) or direct "
                          "(the answer only: the paper's short generation)"},
    )  # fmt: skip
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "generation cap per path (default: the prompt pack's budget)"}
    )
    budget_factor: float | None = field(
        default=1.5,
        metadata={"help": "a path may generate this many times the tokens of the default path's answer "
                          "(bounds the cost of paths that never stop; none: the cap alone)"},
    )  # fmt: skip
    simulations: int = field(default=200, metadata={"help": "MCTS simulations per problem (paper: 200)"})
    exploration: float = field(
        default=math.sqrt(2), metadata={"help": "UCB exploration constant c (PoLar: sqrt 2)"}
    )
    length_penalty: float = field(
        default=5.0, metadata={"help": "UCB length penalty lambda on len(path)/layers (paper: 5)"}
    )
    random_expand: float = field(
        default=0.1, metadata={"help": "probability of expanding a random untried move (paper: 0.1)"}
    )
    moves: Literal["both", "skip", "repeat"] = field(
        default="both", metadata={"help": "moves searched: both (skip and repeat), skip only, repeat only"}
    )
    max_block: int = field(default=4, metadata={"help": "largest block a move skips or repeats (paper: 4)"})
    max_uses: int = field(default=2, metadata={"help": "times a layer may run in a path (paper: 2)"})
    min_length: int = field(default=1, metadata={"help": "fewest layers a path may run"})
    max_length: int | None = field(
        default=None, metadata={"help": "most layers a path may run (default: max-uses x layers)"}
    )
    block_moves: Literal["everywhere", "root"] = field(
        default="everywhere",
        metadata={"help": "where blocks larger than one layer may be moved: everywhere, or only as the first "
                          "move (PoLar's expansion rule)"},
    )  # fmt: skip
    batch_size: int = field(default=64, metadata={"help": "problems per model call (one path per call)"})
    trees: bool = field(default=True, metadata={"help": "write each problem's search tree as GraphML"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.out:
            raise ValueError("give a run directory: --out runs/NAME (rerun with the same --out to resume)")
        for name in ("limit", "max_new_tokens", "batch_size", "max_block", "max_uses"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.budget_factor is not None and self.budget_factor <= 0:
            raise ValueError(f"--budget-factor must be > 0 (or none), got {self.budget_factor}")
        if self.moves not in MOVES:
            raise ValueError(f"--moves must be one of {sorted(MOVES)}, got {self.moves!r}")
        self.filter = tuple(self.filter)
        problem_filter(self.filter)  # validates KEY=VALUE
        self.settings()  # validates the MCTS knobs

    def settings(self) -> SearchSettings:
        return SearchSettings(
            self.simulations, self.exploration, self.length_penalty, self.random_expand, self.seed
        )

    def grammar(self, num_layers: int) -> LayerGrammar:
        return LayerGrammar(
            num_layers,
            max_block=self.max_block,
            max_uses=self.max_uses,
            min_length=self.min_length,
            max_length=self.max_length,
            ops=MOVES[self.moves],
            block_moves=self.block_moves,
        )

    def identity(self) -> dict[str, Any]:
        from reasonkit.config import config_to_dict

        return {k: v for k, v in config_to_dict(self).items() if k not in RESUMABLE}


def ordered_problems(bench: str, data: str | None, split: str | None, seed: int) -> list[Problem]:
    """The benchmark's problems in the order ``--limit`` takes them (arith: spread over operation counts)."""
    generated = bench.lower() == "arith" and data is None
    if generated:  # generating arith takes seconds and is deterministic: once per process
        return list(_generated_arith(split, seed))
    return list(_load_ordered(bench, data, split, seed))


@functools.lru_cache(maxsize=8)
def _generated_arith(split: str | None, seed: int) -> tuple[Problem, ...]:
    return tuple(_load_ordered("arith", None, split, seed))


def _load_ordered(bench: str, data: str | None, split: str | None, seed: int) -> list[Problem]:
    from reasonkit.evals.loaders import load, spread_order

    generated = bench.lower() == "arith" and data is None
    options: dict[str, Any] = {"split": split} if split is not None else {}
    if generated or bench.lower().startswith("gpqa"):
        options["seed"] = seed
    problems = load(bench, data, **options)
    return spread_order(problems, lambda p: p.meta.get("n_ops"), seed) if generated else problems


def problem_filter(pairs: Sequence[str]) -> dict[str, str]:
    """``("n_ops=1",)`` -> ``{"n_ops": "1"}``; ValueError naming the expected form."""
    parsed = [pair.split("=", 1) for pair in pairs]
    bad = [pair for pair, kv in zip(pairs, parsed) if len(kv) != 2 or not all(x.strip() for x in kv)]
    if bad:
        raise ValueError(f"--filter takes KEY=VALUE pairs on problem metadata, e.g. n_ops=1; got {bad}")
    return {k.strip(): v.strip() for k, v in parsed}


def select_problems(config: SearchConfig) -> list[Problem]:
    """The run's problems: the benchmark in ``--limit`` order, filtered, then cut at ``--limit``."""
    wanted = problem_filter(config.filter)
    problems = [
        p
        for p in ordered_problems(config.bench, config.data, config.split, config.seed)
        if all(str(p.meta.get(k)) == v for k, v in wanted.items())
    ]
    return problems[: config.limit] if config.limit is not None else problems


def run_scorer(
    run: Path, search: SearchConfig, problems: Sequence[Problem], backend: Any, batch_size: int
) -> Any:
    """A PathScorer over a search run's own reward table and settings: what a runner that evaluates
    more paths on a searched run (controls, exhaustive recall) scores with. Hold the run's claim."""
    from reasonkit.cola.scoring import PathScorer
    from reasonkit.cola.table import RewardTable

    return PathScorer(
        backend, problems, call=search.call, max_new_tokens=search.max_new_tokens,
        budget_factor=search.budget_factor, batch_size=batch_size, table=RewardTable(run / "evaluations.jsonl"),
    )  # fmt: skip


def load_run(run: str | Path) -> tuple[SearchConfig, list[Any]]:
    """The settings and the per-problem records of a search run directory (FileNotFoundError naming
    the fix when it is not one)."""
    from reasonkit.cola.records import read_records
    from reasonkit.config import make_config
    from reasonkit.rundir import read_json

    run = Path(run)
    for name in ("run.json", "searches.jsonl"):
        if not (run / name).is_file():
            raise FileNotFoundError(
                f"{run / name} is missing: {run} is not a search run; run `reasonkit cola search --out {run}` first"
            )
    stored = read_json(run / "run.json")
    known = set(SearchConfig.__dataclass_fields__)
    values = {k: v for k, v in stored.items() if k in known and v is not None}
    config = make_config(SearchConfig, {**values, "out": str(run)}, str(run / "run.json"))
    return config, read_records(run / "searches.jsonl")


def tree_file(out: Path, problem_id: str) -> Path:
    return out / "trees" / (re.sub(r"[^A-Za-z0-9._-]+", "_", problem_id) + ".graphml")


def run_search(config: SearchConfig, backend: Any = None) -> dict[str, Any]:
    """Search (or resume) every problem of the run; write the records and the report; return the summary."""
    from reasonkit.cola.report import write_run_report
    from reasonkit.rundir import claim

    problems = select_problems(config)
    if not problems:
        raise ValueError(
            f"{config.bench} gave no problems to search (check --filter {' '.join(config.filter)})"
        )
    backend = backend if backend is not None else config.load(config.model)
    out = Path(config.out)
    with claim(out, config.identity(), what="CoLa search"):
        _search_missing(config, backend, problems, out)
        return write_run_report(out)


def _search_missing(config: SearchConfig, backend: Any, problems: Sequence[Problem], out: Path) -> None:
    import networkx as nx

    from reasonkit.cola.lockstep import run_lockstep
    from reasonkit.cola.records import make_record, read_records
    from reasonkit.cola.scoring import PathScorer
    from reasonkit.cola.table import RewardTable
    from reasonkit.progress import progress_bar
    from reasonkit.rundir import JsonlAppender

    records_file = out / "searches.jsonl"
    done = {r.problem_id for r in read_records(records_file)} if records_file.exists() else set()
    positions = {p.id: i for i, p in enumerate(problems)}
    beyond = [pid for pid in done if pid not in positions]
    if beyond:
        raise ValueError(
            f"{out} already holds searches of {len(beyond)} problems past --limit {config.limit}; rerun with the "
            "limit it was run with or a larger one, or use a new --out"
        )
    todo = [i for i, p in enumerate(problems) if p.id not in done]
    table = RewardTable(out / "evaluations.jsonl")
    scorer = PathScorer(
        backend,
        problems,
        call=config.call,
        max_new_tokens=config.max_new_tokens,
        budget_factor=config.budget_factor,
        batch_size=config.batch_size,
        table=table,
    )
    grammar = config.grammar(scorer.num_layers)
    searches = {i: PathSearch(grammar, config.settings()) for i in todo}
    started, session = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    with (
        JsonlAppender(records_file) as records_out,
        JsonlAppender(out / "metrics.jsonl") as metrics,
        progress_bar(
            total=len(todo) * config.simulations, desc="cola search", unit="sim", enabled=config.progress
        ) as bar,
    ):
        shown = [0]

        def finished(row: int, search: PathSearch) -> None:
            outcomes = table.of_problem(problems[row].id)
            record = make_record(
                problems[row], search.scored_paths(), outcomes, grammar.default_path, search.simulations
            )
            if config.trees:
                file = tree_file(out, problems[row].id)
                file.parent.mkdir(parents=True, exist_ok=True)
                nx.write_graphml(search.graph(), file)
            records_out.write(record.to_json())

        def round_done() -> None:
            simulations = sum(s.simulations for s in searches.values())
            bar.update(simulations - shown[0])
            shown[0] = simulations
            metrics.write(
                {
                    "session": session,
                    "seconds": round(time.perf_counter() - started, 3),
                    "simulations": simulations,
                    "model_calls": scorer.calls,
                    "rows_decoded": scorer.rows_decoded,
                    "decode_seconds": round(scorer.seconds, 3),
                    "searches_done": sum(s.simulations == config.simulations for s in searches.values()),
                    "searches": len(searches),
                }
            )

        run_lockstep(
            {i: s.run() for i, s in searches.items()}, scorer, on_finish=finished, on_round=round_done
        )
        if searches:
            round_done()
    table.close()


def search_command(argv: Sequence[str]) -> int:
    from reasonkit.config import parse_config

    config = parse_config(SearchConfig, argv, prog="reasonkit cola search")
    summary = run_search(config)
    print(
        f"{summary['problems']} problems: default path {summary['default_accuracy']:.3f}, oracle "
        f"{summary['oracle_accuracy']:.3f}; report -> {Path(config.out) / 'report.md'}"
    )
    return 0
