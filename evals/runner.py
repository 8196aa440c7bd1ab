"""``reasonkit eval``: run a strategy over a benchmark into a resumable run directory, then report.

    reasonkit eval --bench math500 --model http://localhost:8000/v1 --strategy cot --out runs/m500-cot
    reasonkit eval --bench aime24 --model Qwen/Qwen2.5-Math-1.5B-Instruct --strategy sc --n 16 \\
        --temperature 0.6 --out runs/aime24-sc16
    reasonkit eval compare runs/m500-cot runs/aime24-sc16        # one strategy x benchmark table

The run directory is the :class:`~reasonkit.controller.Controller`'s (``run.json``,
``records.jsonl`` with one Trace per problem, resume by problem id); this module adds what an
evaluation needs on top: benchmark prompts, per-sample metrics (avg@n, pass@k, maj@k) for sampled
strategies, breakdowns by subject / level / domain, ``summary.json``, ``report.md`` and a PNG.
Interrupt it at any point and run the same command again: finished problems are kept, none repeats.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.answers import DEFAULT_MATH_TIMEOUT, default_verifier, grade_many
from reasonkit.backends.base import LanguageModel
from reasonkit.backends.options import BackendOptions
from reasonkit.config import config_to_dict
from reasonkit.controller import Controller
from reasonkit.evals.loaders import load, spread_order
from reasonkit.evals.metrics import accuracy, breakdown, sample_metrics, stderr
from reasonkit.evals.report import write_report
from reasonkit.rundir import atomic_write_json, claim, iter_jsonl
from reasonkit.strategies import STRATEGIES, Strategy, make_strategy
from reasonkit.types import Problem, Trace

GROUP_KEYS: tuple[str, ...] = ("subject", "level", "domain")


@dataclass
class EvalConfig(BackendOptions):
    """Evaluate a model and a strategy on a benchmark: reasonkit eval --bench math500 --model SPEC --out DIR"""

    bench: str = field(
        default="",
        metadata={"help": "math500, aime24, aime25, amc23, gsm8k, gpqa (gpqa_main/diamond/extended), arith, "
                          "a .jsonl file, or a Hugging Face dataset id"},
    )  # fmt: skip
    out: str = field(default="", metadata={"help": "run directory (created; rerun the command to resume)"})
    strategy: str = field(
        default="cot",
        metadata={"help": "direct, cot, sc (self-consistency), or a method's strategy (rlot, fixed: each adds "
                          "its own flags, listed by --strategy NAME --help)"},
    )  # fmt: skip
    n: int | None = field(default=None, metadata={"help": "samples per problem for sc (default 5)"})
    temperature: float | None = field(
        default=None, metadata={"help": "sampling temperature (sc default 0.7; AIME avg@n is usually 0.6)"}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "generation budget per call (default: the prompt's, 4096 for CoT)"}
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "evaluate only N problems: a dataset's first N; for the generated arith benchmark a "
                          "sample drawn with --seed, spread evenly over operation counts (1-8)"},
    )  # fmt: skip
    data: str | None = field(
        default=None, metadata={"help": "data folder or file (default $REASONKIT_DATA, else ../shared/data)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the GPQA option shuffle and of sampling"})
    field_map: tuple[str, ...] = field(
        default=(),
        metadata={"help": "for JSONL/HF data: reasonkit_name=file_field, e.g. --field question=problem",
                  "aliases": ("--field",)},
    )  # fmt: skip
    kind: str | None = field(
        default=None, metadata={"help": "answer kind of JSONL/HF data: math, int, choice"}
    )
    split: str | None = field(default=None, metadata={"help": "split of an HF dataset or of arith"})
    prompts: str | None = field(default=None, metadata={"help": "YAML file overriding the benchmark prompts"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight for HTTP backends"})
    batch_size: int = field(default=32, metadata={"help": "problems per strategy call (one backend batch)"})
    grade_timeout: float = field(
        default=DEFAULT_MATH_TIMEOUT, metadata={"help": "seconds allowed to grade one math answer"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    keep_gpqa_text: bool = field(
        default=False,
        metadata={"help": "write GPQA's questions and the responses into records.jsonl; by default its records "
                          "hold ids, answers, verdicts and SHA-256 digests, because GPQA's authors ask that its "
                          "questions never appear in plain text online (the run directory is owner-only either way)"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.bench:
            raise ValueError("give a benchmark: --bench math500 (or aime24, gpqa_diamond, my.jsonl …)")
        if not self.out:
            raise ValueError("give a run directory: --out runs/NAME (rerun with the same --out to resume)")
        for name in ("n", "limit", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.concurrency < 1 or self.batch_size < 1 or self.grade_timeout <= 0:
            raise ValueError("--concurrency and --batch-size must be >= 1 and --grade-timeout > 0")
        if self.n is not None and self.n > 1 and self.strategy in ("direct", "cot"):
            raise ValueError(
                f"--n {self.n} with --strategy {self.strategy}: for n samples per problem use --strategy sc "
                "(it reports maj@n as accuracy plus avg@n and pass@k)"
            )

    @property
    def generated(self) -> bool:
        """Whether the benchmark is generated (arith without --data), not a fixed dataset."""
        return self.bench.lower() == "arith" and self.data is None

    def load_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.field_map:
            pairs = [item.split("=", 1) for item in self.field_map]
            bad = [item for item, pair in zip(self.field_map, pairs) if len(pair) != 2 or not all(pair)]
            if bad:
                raise ValueError(f"--field takes name=file_field pairs, e.g. question=problem; got {bad}")
            options["fields"] = dict(pairs)
        if self.kind is not None:
            options["kind"] = self.kind
        if self.split is not None:
            options["split"] = self.split
        if self.bench.lower().startswith("gpqa") or self.generated:
            options["seed"] = self.seed
        return options


def build_strategy(
    config: EvalConfig, backend: LanguageModel, problems: Sequence[Problem], options: Any = None
) -> Strategy:
    """The strategy, with benchmark prompts for chat models and the run's sampling settings;
    ``options`` are the strategy's own (its ``Options`` dataclass, e.g. RLoT's navigator)."""
    name = config.strategy
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    if name not in ("direct", "cot", "sc"):
        return make_strategy(name, **(config_to_dict(options) if options is not None else {}))
    pack = _pack(config, backend, problems)
    if name == "sc":
        return make_strategy(name, n=config.n, temperature=config.temperature, seed=config.seed, pack=pack)
    params = None
    if config.temperature is not None:
        hint = pack.sampling(name, problems[0].kind)
        params = dataclasses.replace(hint, temperature=config.temperature, seed=config.seed)
    return make_strategy(name, pack=pack, params=params)


def _pack(config: EvalConfig, backend: LanguageModel, problems: Sequence[Problem]) -> Any:
    from reasonkit.evals.prompts import benchmark_pack
    from reasonkit.packs import load_pack

    pack_name = str(getattr(backend, "prompt_pack", "natural"))
    if pack_name == "natural":
        pack = benchmark_pack(config.prompts)
    elif config.prompts is not None:
        raise ValueError(
            f"--prompts applies to chat models (the natural prompt pack); backend {backend.name!r} "
            f"speaks the {pack_name!r} pack"
        )
    else:
        pack = load_pack(pack_name)
    if config.max_new_tokens is not None:
        budget = {"max_new_tokens": config.max_new_tokens}
        kinds = {p.kind: budget for p in problems}
        pack = pack.with_overrides({"calls": {c: {**budget, "by_kind": kinds} for c in ("direct", "cot")}})
    return pack


def _load_backend(config: EvalConfig) -> LanguageModel:
    backend: LanguageModel = config.load(config.model, server={"max_concurrency": config.concurrency})
    return backend


def _samples(trace: Trace) -> tuple[list[str], list[str | None]] | None:
    for step in reversed(trace.steps):
        texts, answers = step.meta.get("samples"), step.meta.get("answers")
        if isinstance(texts, list) and isinstance(answers, list) and len(texts) == len(answers):
            return texts, answers
    return None


def eval_summary(
    problems: Sequence[Problem], traces: Sequence[Trace], base: dict[str, Any]
) -> dict[str, Any]:
    """The controller's summary plus accuracy's stderr, breakdowns and per-sample metrics."""
    by_id = {p.id: p for p in problems}
    verdicts = [t.correct for t in traces]
    summary = dict(base)
    graded = sum(v is not None for v in verdicts)
    summary["accuracy"] = accuracy(verdicts)
    summary["accuracy_stderr"] = stderr(summary["accuracy"], graded)
    summary["unanswered"] = sum(1 for t in traces if t.answer is None)
    summary["breakdowns"] = {
        key: breakdown(
            (by_id[t.problem_id].meta[key], t.correct) for t in traces if key in by_id[t.problem_id].meta
        )
        for key in GROUP_KEYS
        if any(key in p.meta for p in problems)
    }
    sampled = [(t, s) for t in traces if (s := _samples(t)) is not None]
    if sampled and len(sampled) == len(traces) and all(by_id[t.problem_id].answer for t in traces):
        items = [
            (text, by_id[t.problem_id].answer, by_id[t.problem_id].kind)
            for t, (texts, _) in sampled
            for text in texts
        ]
        flat = grade_many(items)
        per_problem, start = [], 0
        for _, (texts, answers) in sampled:
            per_problem.append((answers, flat[start : start + len(texts)]))
            start += len(texts)
        summary["samples"] = sample_metrics(per_problem)
    return summary


def _check_limit(out: Path, problems: Sequence[Problem], limit: int) -> None:
    """Refuse a --limit smaller than what the run directory already holds, with the fix."""
    records = out / "records.jsonl"
    if not records.is_file():
        return
    position = {p.id: i for i, p in enumerate(problems)}
    done = [
        position.get(str(obj.get("problem_id")), -1)
        for _, obj in iter_jsonl(records, tolerate_torn_tail=True)
    ]
    beyond = max(done, default=-1) + 1
    if beyond > limit:
        raise ValueError(
            f"{out} already holds results for the first {beyond} problems, more than --limit {limit}; "
            f"rerun with --limit {beyond} or more (or without --limit), or use a new --out"
        )


def run_eval(
    config: EvalConfig,
    backend: LanguageModel | None = None,
    strategy: Strategy | None = None,
    options: Any = None,
) -> dict[str, Any]:
    """Run (or resume) an evaluation and write its report; returns the summary.

    ``backend`` / ``strategy`` objects replace ``config.model`` / ``config.strategy`` when given;
    ``options`` are the strategy's own options (``reasonkit.strategies.strategy_options``).
    """
    problems = load(config.bench, config.data, **config.load_options())
    if config.limit is not None:
        if config.generated:
            problems = spread_order(problems, lambda p: p.meta.get("n_ops"), config.seed)
        _check_limit(Path(config.out), problems, config.limit)
        problems = problems[: config.limit]
    default_verifier().timeout = config.grade_timeout
    model_label = backend.name if backend is not None else config.model
    backend = backend or _load_backend(config)
    strategy = strategy or build_strategy(config, backend, problems, options)
    run_info = {
        "bench": config.bench, "seed": config.seed, "prompts": config.prompts,
        "max_new_tokens": config.max_new_tokens, "temperature": config.temperature,
    }  # fmt: skip
    controller = Controller(
        backend,
        strategy,
        config.out,
        batch_size=config.batch_size,
        progress=config.progress,
        run_info=run_info,
        keep_text=config.keep_gpqa_text,
    )
    with claim(config.out, {}):  # held until the report is written; the controller checks the identity
        result = controller.run(problems)
        summary = eval_summary(problems, result.traces, result.summary)
        summary.update(
            {
                "benchmark": config.bench,
                "model": model_label,
                "grading": {"math_timeouts": default_verifier().timeouts},
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
        out = Path(config.out)
        atomic_write_json(out / "summary.json", summary)
        write_report(out, summary)
    return summary


def _merge_repeated(argv: Sequence[str], flags: tuple[str, ...]) -> list[str]:
    """``--field a=b --field c=d`` -> ``--field a=b c=d`` (argparse keeps only the last repeat)."""
    merged: list[str] = []
    values: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in flags:
            i += 1
            while i < len(args) and not args[i].startswith("--"):
                values.append(args[i])
                i += 1
            continue
        merged.append(args[i])
        i += 1
    return [*merged, "--field", *values] if values else merged


#: ``reasonkit eval NAME ...``: runners beside the benchmark evaluation (imported when run)
SUBCOMMANDS: dict[str, str] = {
    "compare": "reasonkit.evals.report:compare_command",
    "navigator": "reasonkit.evals.compare_navigator:compare_command",
    "lm": "reasonkit.evals.builtin_lm:evaluate_command",
    "own-mistakes": "reasonkit.evals.own_mistakes:own_mistakes_command",
    "cola-controls": "reasonkit.evals.cola_controls:controls_command",
    "cola-recall": "reasonkit.evals.cola_recall:recall_command",
    "tah": "reasonkit.evals.tah_study:study_command",
}


def eval_command(argv: Sequence[str]) -> int:
    """``reasonkit eval ...``; ``reasonkit eval compare DIR...`` renders a table from several runs,
    ``reasonkit eval navigator`` compares a navigator with the baselines, ``reasonkit eval lm`` scores a
    built-in-family model on every block task."""
    args = list(argv)
    if args and args[0] in SUBCOMMANDS:
        module_name, function = SUBCOMMANDS[args[0]].split(":")
        return int(getattr(importlib.import_module(module_name), function)(args[1:]))
    from reasonkit.config import parse_config_with_options
    from reasonkit.strategies import strategy_options

    config, options = parse_config_with_options(
        EvalConfig,
        _merge_repeated(args, ("--field", "--field-map", "--field_map")),
        prog="reasonkit eval",
        selector="strategy",
        options_for=strategy_options,
        choices=STRATEGIES,
    )
    summary = run_eval(config, options=options)
    acc = summary["accuracy"]
    shown = "n/a" if acc is None else f"{acc:.4f}"
    print(
        f"{config.bench} / {summary['strategy']}: accuracy {shown} over {summary['n']} problems -> {config.out}"
    )
    return 0
