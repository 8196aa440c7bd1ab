"""Compare a trained navigator with Direct, CoT, CoT-SC(n) and fixed block sequences on held-out problems.

    reasonkit eval navigator --navigator builtin-arith --model builtin --task arith

Each strategy runs through the controller into its own resumable run directory under ``--out``
(rerunning skips finished problems; the baselines do not depend on the navigator, so comparing
another navigator in the same ``--out`` reruns only its own ``rlot-*`` directory); then
``results.md`` / ``results.json`` hold one row per strategy — accuracy with a 95 % Wilson interval,
tokens and calls per problem, accuracy by number of operations (arith), and the navigator's
accuracy by block sequence — and ``blocks.png`` the navigator's block-usage histogram. The learned
policy as a picture is ``rlot-*/policy.png`` (block-transition graph, each edge with its share and
success rate; :mod:`reasonkit.evals.policy_graph`), its graph ``rlot-*/policy.graphml``. For arith
(and arith-hard) the problems are the test split exactly as
``reasonkit eval --bench arith`` draws it (``arith.benchmark("test", per_ops)``): never a training
or validation problem.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.backends.options import BackendOptions
from reasonkit.config import parse_config
from reasonkit.evals.policy_graph import draw_transition_graph, sequence_rows, transition_graph, write_graphml
from reasonkit.plots import bar_plot
from reasonkit.rundir import atomic_write_json, atomic_write_text, claim
from reasonkit.types import Problem, Trace

#: Fixed sequences compared by default: plain steps, checked steps, decompose first, decompose only,
#: and one using every block.
DEFAULT_FIXED = (
    "reason,reason,reason,reason,reason",
    "reason,refine,reason,refine,reason",
    "decompose,reason,reason,reason,reason",
    "decompose,decompose,decompose,decompose,decompose",
    "decompose,debate,refine,reason,reason",
)


@dataclass
class CompareConfig(BackendOptions):
    """Compare a navigator with Direct, CoT, CoT-SC and fixed block sequences (held-out problems only)."""

    navigator: str = field(default="builtin-arith", metadata={"help": "navigator file or preset name"})
    task: str = field(
        default="arith",
        metadata={
            "help": "arith or arith-hard (4-digit operands; their test split), or a benchmark / JSONL file"
        },
    )
    per_ops: int = field(
        default=50, metadata={"help": "arith, arith-hard: test problems per operation count (1..8)"}
    )
    problems: int | None = field(
        default=None, metadata={"help": "other tasks: held-out problems (default all)"}
    )
    sc_n: int = field(default=5, metadata={"help": "samples for CoT-SC"})
    fixed: tuple[str, ...] = field(
        default=DEFAULT_FIXED, metadata={"help": "fixed block sequences to compare"}
    )
    out: str = field(default="runs/compare-navigator", metadata={"help": "output directory (resumable)"})
    batch_size: int = field(default=50, metadata={"help": "problems per strategy call"})
    seed: int = field(default=0, metadata={"help": "seed of the problems and of CoT-SC sampling"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.fixed = tuple(self.fixed)
        if self.per_ops < 1 or self.sc_n < 1 or self.batch_size < 1:
            raise ValueError("--per-ops, --sc-n and --batch-size must be >= 1")


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, center - half), min(1.0, center + half))


def heldout_problems(config: CompareConfig) -> list[Problem]:
    from reasonkit.tasks import arith

    if config.task in arith.PROBLEM_SETS:
        return arith.benchmark(
            "test", per_ops=config.per_ops, seed=config.seed, config=arith.problem_config(config.task)
        )
    from reasonkit.navigators.problems import load_task

    return load_task(config.task, "test", config.problems, seed=config.seed)


def navigator_slug(navigator: str) -> str:
    """A directory name for a navigator's run: the preset name, or the file's folder and stem."""
    from reasonkit.navigators.presets import PRESETS

    if navigator in PRESETS:
        return navigator
    path = Path(navigator)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{path.parent.name}-{path.stem}").strip("-")


def row_of(name: str, traces: Sequence[Trace], problems: Sequence[Problem]) -> dict[str, Any]:
    """Accuracy, interval, cost and (when problems carry ``n_ops``) accuracy by operation count."""
    n = len(traces)
    correct = sum(bool(t.correct) for t in traces)
    low, high = wilson(correct, n)
    by_ops: dict[int, list[bool]] = defaultdict(list)
    ops = {p.id: p.meta.get("n_ops") for p in problems}
    for t in traces:
        n_ops = ops.get(t.problem_id)
        if n_ops is not None:
            by_ops[int(n_ops)].append(bool(t.correct))
    blocks = Counter(b for t in traces for b in t.meta.get("blocks", ()))
    return {
        "strategy": name,
        "n": n,
        "accuracy": correct / n,
        "ci95": [round(low, 4), round(high, 4)],
        "tokens_per_problem": sum(t.cost.tokens for t in traces) / n,
        "tokens_in_per_problem": sum(t.cost.tokens_in for t in traces) / n,
        "tokens_out_per_problem": sum(t.cost.tokens_out for t in traces) / n,
        "calls_per_problem": sum(t.cost.calls for t in traces) / n,
        "accuracy_by_ops": {k: sum(v) / len(v) for k, v in sorted(by_ops.items())},
        "blocks": dict(blocks),
    }


def markdown(rows: Sequence[dict[str, Any]], config: CompareConfig) -> str:
    ops = sorted({k for r in rows for k in r["accuracy_by_ops"]})
    head = "| strategy | accuracy | 95% CI | tokens / problem (in + out) | calls / problem |"
    head += "".join(f" {k} ops |" for k in ops)
    lines = [
        f"Model `{config.model}`, task `{config.task}` (held-out test problems: {rows[0]['n']}), "
        f"navigator `{config.navigator}`.",
        "",
        head,
        "|---" * (5 + len(ops)) + "|",
    ]
    for r in rows:
        cells = [
            r["strategy"], f"{r['accuracy']:.3f}", f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}",
            f"{r['tokens_per_problem']:.0f} ({r['tokens_in_per_problem']:.0f} + {r['tokens_out_per_problem']:.0f})",
            f"{r['calls_per_problem']:.1f}", *(f"{r['accuracy_by_ops'].get(k, float('nan')):.2f}" for k in ops),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    rlot = next((r for r in rows if r["strategy"] == "rlot"), None)
    if rlot is not None and rlot["blocks"]:
        total = sum(rlot["blocks"].values())
        usage = ", ".join(
            f"{b} {c} ({c / total:.0%})" for b, c in sorted(rlot["blocks"].items(), key=lambda x: -x[1])
        )
        lines += ["", f"Navigator block usage (blocks it chose over all problems): {usage}."]
    if rlot is not None and rlot.get("sequences"):
        lines += ["", "Navigator accuracy by block sequence:", "",
                  "| blocks | problems | share | accuracy | tokens / problem |", "|---|---|---|---|---|"]  # fmt: skip
        for r in rlot["sequences"]:
            lines.append(
                f"| {r['sequence']} | {r['n']} | {r['share']:.1%} | {r['accuracy']:.3f} | {r['tokens_per_problem']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def compare(config: CompareConfig, backend: Any = None) -> list[dict[str, Any]]:
    """Run every strategy (resumably) and write the tables and plots; return the rows.

    ``backend`` replaces ``config.model`` with a LanguageModel object.
    """
    from reasonkit.navigators.strategy import RLoT

    problems = heldout_problems(config)
    navigator = RLoT(config.navigator)  # fails early on a bad file
    # one comparison per --out at a time (the strategies' own directories are claimed again inside)
    with claim(config.out, {}, what="comparison"):
        return _compare(config, backend, problems, navigator)


def _compare(
    config: CompareConfig, backend: Any, problems: list[Problem], navigator: Any
) -> list[dict[str, Any]]:
    from reasonkit.controller import Controller
    from reasonkit.navigators.strategy import FixedSequence
    from reasonkit.strategies import CoT, Direct, SelfConsistency

    if backend is None:
        backend = config.load(config.model)
    strategies: list[tuple[str, Any]] = [
        ("direct", Direct()),
        ("cot", CoT()),
        (f"cot-sc{config.sc_n}", SelfConsistency(n=config.sc_n, seed=config.seed)),
        *[(f"fixed[{seq}]", FixedSequence(seq)) for seq in config.fixed],
        ("rlot", navigator),
    ]
    out = Path(config.out)
    rows = []
    for name, strategy in strategies:
        slug = name.replace("[", "-").replace("]", "").replace(",", "-")
        info: dict[str, Any] = {"task": config.task, "n_problems": len(problems)}
        if strategy is navigator:  # baselines do not depend on the navigator: other navigators reuse them
            slug, info = f"rlot-{navigator_slug(config.navigator)}", {**info, "navigator": config.navigator}
        controller = Controller(
            backend, strategy, out_dir=out / slug, batch_size=config.batch_size, progress=config.progress,
            run_info=info,
        )  # fmt: skip
        traces = controller.run(problems).traces
        rows.append(row_of(name, traces, problems))
        if strategy is navigator:
            rows[-1]["sequences"] = sequence_rows(traces)
            graph = transition_graph(traces)
            write_graphml(graph, out / slug / "policy.graphml")
            draw_transition_graph(
                graph, out / slug / "policy.png",
                title=f"navigator {config.navigator} on {len(traces)} problems, model {config.model}",
            )  # fmt: skip
    atomic_write_json(
        out / "results.json", {"config": config.__dict__ | {"fixed": list(config.fixed)}, "rows": rows}
    )
    atomic_write_text(out / "results.md", markdown(rows, config))
    rlot = rows[-1]
    if rlot["blocks"]:
        order = ("reason", "decompose", "debate", "refine", "terminate")
        bar_plot(
            out / "blocks.png",
            {b: {"navigator": float(rlot["blocks"].get(b, 0))} for b in order},
            title=f"Blocks chosen by the navigator ({rlot['n']} test problems)",
            ylabel="times chosen",
        )
    return rows


def compare_command(argv: Sequence[str]) -> int:
    config = parse_config(CompareConfig, list(argv), prog="reasonkit eval navigator")
    compare(config)
    print((Path(config.out) / "results.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(compare_command(sys.argv[1:]))
