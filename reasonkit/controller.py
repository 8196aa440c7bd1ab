"""The controller: run a strategy over problems with a backend, into a resumable run directory.

A run directory holds
  - ``run.json``      what ran (strategy, backend, options); a rerun must match it,
  - ``records.jsonl`` one :class:`~reasonkit.types.Trace` per finished problem, appended as each
                      batch finishes (a crash loses at most the batch in flight),
  - ``summary.json``  accuracy, tokens and calls per problem, wall time (written atomically),
  - ``wall.json``     the wall time so far, after every batch: a resumed run adds to it.
Running the same command again skips problems already in ``records.jsonl``: nothing is duplicated
or lost.

    >>> from reasonkit import solve
    >>> trace = solve("12+7*3", model="builtin", strategy="cot", answer="33", kind="arith")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.backends.base import LanguageModel, declared_kinds, warn_outside_training
from reasonkit.backends.options import BackendOptions
from reasonkit.progress import progress_bar
from reasonkit.rundir import JsonlAppender, RunDirError, atomic_write_json, claim, iter_jsonl, read_json
from reasonkit.strategies import UNLIMITED, Budget, Strategy, make_strategy
from reasonkit.types import Problem, Trace


def summarize(traces: Sequence[Trace], wall_seconds: float) -> dict[str, Any]:
    """Accuracy and cost figures over ``traces`` (problems with unknown gold are left out of accuracy)."""
    n = len(traces)
    graded = [t for t in traces if t.correct is not None]
    correct = sum(1 for t in graded if t.correct)
    per = max(1, n)
    return {
        "n": n,
        "graded": len(graded),
        "correct": correct,
        "accuracy": correct / len(graded) if graded else None,
        "tokens_in_per_problem": sum(t.cost.tokens_in for t in traces) / per,
        "tokens_out_per_problem": sum(t.cost.tokens_out for t in traces) / per,
        "tokens_per_problem": sum(t.cost.tokens for t in traces) / per,
        "calls_per_problem": sum(t.cost.calls for t in traces) / per,
        "wall_seconds": round(wall_seconds, 3),
        "budget_exhausted": sum(1 for t in traces if t.meta.get("budget_exhausted")),
    }


@dataclass
class RunResult:
    """What :meth:`Controller.run` returns: one :class:`~reasonkit.types.Trace` per problem, in the
    order given (steps with prompts, outputs and costs; answer; verdict), the summary figures
    (accuracy, tokens and calls per problem, wall time) and the run directory, if any.
    :func:`format_trace` renders a trace as text."""

    traces: list[Trace]
    summary: dict[str, Any]
    out_dir: Path | None = None


@dataclass
class Controller:
    """Runs ``strategy`` over problems with ``backend``; resumable when ``out_dir`` is given.

    ``batch_size`` problems go to the strategy at once (one backend call per block for all of
    them); ``budget`` limits calls/tokens per problem; ``run_info`` is stored in ``run.json`` and
    must match on resume.
    """

    backend: LanguageModel
    strategy: Strategy
    out_dir: str | Path | None = None
    batch_size: int = 32
    budget: Budget = UNLIMITED
    progress: bool = True
    run_info: dict[str, Any] = field(default_factory=dict)
    #: write the text of problems whose ``meta["redact"]`` is set (GPQA) into records.jsonl; by default
    #: their records keep ids, answers, verdicts and costs, with SHA-256 digests in place of text
    keep_text: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.run_dir: Path | None = Path(self.out_dir) if self.out_dir is not None else None

    # -- run directory -------------------------------------------------------------------------
    @property
    def records_path(self) -> Path | None:
        return self.run_dir / "records.jsonl" if self.run_dir else None

    def _identity(self) -> dict[str, Any]:
        # A strategy may describe its settings (navigator weights, block sequence, samples): a run
        # directory then refuses the same strategy name with other settings instead of mixing them.
        described = getattr(self.strategy, "identity", {})
        return {"strategy": self.strategy.name, "backend": self.backend.name, **described, **self.run_info}

    def load_records(self, problems: Sequence[Problem]) -> dict[str, Trace]:
        """Finished traces already in the run directory, keyed by problem id."""
        path = self.records_path
        if path is None or not path.exists():
            return {}
        known = {p.id for p in problems}
        done: dict[str, Trace] = {}
        for line, obj in iter_jsonl(path, tolerate_torn_tail=True):
            trace = Trace.from_dict(obj)
            if trace.problem_id not in known:
                raise RunDirError(
                    f"{path}, line {line}: problem {trace.problem_id!r} is not in this problem set; "
                    "this run directory belongs to another benchmark — use a new --out"
                )
            done[trace.problem_id] = trace
        return done

    # -- running -------------------------------------------------------------------------------
    def run(self, problems: Iterable[Problem]) -> RunResult:
        problems = list(problems)
        ids = [p.id for p in problems]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise RunDirError(f"problem ids must be unique; repeated: {dupes}")
        done: dict[str, Trace] = {}
        held = claim(self.run_dir, self._identity()) if self.run_dir is not None else None
        try:
            if self.run_dir is not None:
                done = self.load_records(problems)
            return self._run(problems, ids, done)
        finally:
            if held is not None:
                held.release()

    def _run(self, problems: list[Problem], ids: list[str], done: dict[str, Trace]) -> RunResult:
        todo = [p for p in problems if p.id not in done]
        if todo:
            warn_outside_training(self.backend, (p.kind for p in todo), "this problem set")
        start = time.perf_counter()
        previous_wall = self._previous_wall() if done else 0.0
        redact = {p.id for p in problems if p.meta.get("redact")} if not self.keep_text else set()
        if redact and self.run_dir is not None:  # owner-only: the directory, and so every file in it
            self.run_dir.chmod(0o700)
        appender = JsonlAppender(self.records_path) if self.records_path else None
        bar = progress_bar(
            len(problems), initial=len(done), enabled=self.progress, desc=self.strategy.name, unit="problem"
        )
        try:
            for begin in range(0, len(todo), self.batch_size):
                batch = todo[begin : begin + self.batch_size]
                traces = self.strategy.solve(batch, self.backend, self.budget)
                if [t.problem_id for t in traces] != [p.id for p in batch]:
                    raise RuntimeError(f"strategy {self.strategy.name!r} returned traces out of order")
                for trace in traces:
                    done[trace.problem_id] = trace
                    if appender is not None:
                        stored = trace.redacted() if trace.problem_id in redact else trace
                        appender.write(stored.to_json())
                if self.run_dir is not None:  # the time so far survives a kill (a resume adds to it)
                    atomic_write_json(
                        self._wall_path, {"wall_seconds": previous_wall + time.perf_counter() - start}
                    )
                bar.update(len(batch))
                graded = [t for t in done.values() if t.correct is not None]
                if graded:
                    bar.set_postfix(acc=f"{sum(bool(t.correct) for t in graded) / len(graded):.3f}")
        finally:
            bar.close()
            if appender is not None:
                appender.close()
        ordered = [done[i] for i in ids]
        summary = summarize(ordered, previous_wall + time.perf_counter() - start)
        summary.update({"strategy": self.strategy.name, "backend": self.backend.name})
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / "summary.json", summary)
        return RunResult(ordered, summary, self.run_dir)

    @property
    def _wall_path(self) -> Path:
        assert self.run_dir is not None
        return self.run_dir / "wall.json"

    def _previous_wall(self) -> float:
        """Seconds earlier legs of this run spent (``wall.json``, written after every batch)."""
        for path in (self._wall_path, self.run_dir / "summary.json" if self.run_dir else None):
            if path is not None and path.exists():
                return float(read_json(path).get("wall_seconds", 0.0))
        return 0.0


def solve(
    question: str,
    *,
    model: str | LanguageModel = "builtin",
    strategy: str | Strategy = "cot",
    answer: str = "",
    kind: str | None = None,
    choices: Sequence[str] | None = None,
    **strategy_options: Any,
) -> Trace:
    """Solve one question and return its trace. ``answer`` (optional) grades it.

    ``model`` is a backend spec (see :func:`reasonkit.backends.loading.load_backend`) or a backend;
    ``strategy`` a name (``direct``, ``cot``, ``sc``, ``rlot`` …) or a strategy object; ``kind`` the
    answer kind (default: the one the model was trained for, e.g. arith for the built-in model, else
    math).
    """
    from reasonkit.backends.loading import load_backend

    backend = load_backend(model) if isinstance(model, str) else model
    strat = make_strategy(strategy, **strategy_options) if isinstance(strategy, str) else strategy
    if kind is None:
        kind = (declared_kinds(backend) or ("math",))[0]
    problem = Problem(
        id="q0", question=question, answer=answer, kind=kind, choices=tuple(choices) if choices else None
    )
    return Controller(backend, strat, progress=False).run([problem]).traces[0]


@dataclass
class SolveConfig(BackendOptions):
    """Solve one question and print its trace: reasonkit solve "12+7*3" --kind arith --answer 33"""

    question: str = field(
        default="", metadata={"help": "the question (also accepted as the first positional argument)"}
    )
    strategy: str = field(
        default="cot",
        metadata={"help": "direct, cot, sc, or a method's strategy (rlot, fixed: each adds its own flags)"},
    )
    n: int | None = field(default=None, metadata={"help": "samples for sc (default 5)"})
    kind: str | None = field(
        default=None,
        metadata={
            "help": "answer kind: math, int, choice, arith (default: arith for the built-in model, else math)"
        },
    )
    answer: str = field(default="", metadata={"help": "gold answer, to grade the result (optional)"})
    json: bool = field(default=False, metadata={"help": "print the trace as one JSON line instead of text"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.question.strip():
            raise ValueError('give a question: reasonkit solve "What is 12+7*3?"')


def format_trace(trace: Trace) -> str:
    """A trace as readable text: each step's block and output, then the answer and cost."""
    lines = []
    for i, step in enumerate(trace.steps, start=1):
        lines.append(f"[{i}] {step.block}  ({step.cost.tokens_in} in / {step.cost.tokens_out} out)")
        lines += [f"    {line}" for line in step.output.strip().splitlines() or [""]]
    verdict = "" if trace.correct is None else ("  (correct)" if trace.correct else "  (wrong)")
    lines.append(f"answer: {trace.answer}{verdict}")
    c = trace.cost
    lines.append(
        f"cost: {c.calls} calls, {c.tokens_in} tokens in, {c.tokens_out} tokens out, {c.seconds:.2f} s"
    )
    return "\n".join(lines)


def solve_command(argv: Sequence[str]) -> int:
    from reasonkit.config import config_to_dict, parse_config_with_options
    from reasonkit.strategies import STRATEGIES, strategy_options

    args = list(argv)
    if args and not args[0].startswith("-"):
        args = ["--question", args[0], *args[1:]]
    config, strategy_opts = parse_config_with_options(
        SolveConfig,
        args,
        prog="reasonkit solve",
        selector="strategy",
        options_for=strategy_options,
        choices=STRATEGIES,
    )
    options: dict[str, Any] = config_to_dict(strategy_opts) if strategy_opts is not None else {}
    if config.strategy == "sc" and config.n is not None:
        options["n"] = config.n
    trace = solve(
        config.question,
        model=config.load(config.model),
        strategy=config.strategy,
        answer=config.answer,
        kind=config.kind,
        **options,
    )
    print(trace.to_json() if config.json else format_trace(trace))
    return 0
