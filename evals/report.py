"""Reports of evaluation runs: ``report.md`` and ``accuracy.png`` per run, and a strategy x benchmark
comparison across runs (``reasonkit eval compare DIR... [--out table.md]``).

Reports hold figures only (never questions, options or answers), so a GPQA report can be shared.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasonkit.plots import bar_plot
from reasonkit.rundir import atomic_write_text, read_json

PLOT_NAME = "accuracy.png"
PREFERRED_BREAKDOWN = ("level", "domain", "subject")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _label(summary: Mapping[str, Any]) -> str:
    return str(summary.get("strategy", "?"))


def _breakdown_table(key: str, groups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [f"## Accuracy by {key}", "", f"| {key} | n | correct | accuracy (%) |", "|---|---:|---:|---:|"]
    lines += [
        f"| {g} | {row['n']} | {row['correct']} | {_pct(row['accuracy'])} |" for g, row in groups.items()
    ]
    return [*lines, ""]


def render_report(summary: Mapping[str, Any], plot_name: str | None = PLOT_NAME) -> str:
    """The markdown report of one run's summary."""
    acc, err = summary.get("accuracy"), summary.get("accuracy_stderr")
    shown = _pct(acc) + (f" ± {100 * 1.96 * err:.1f} (95% CI)" if err is not None else "")
    lines = [
        f"# {summary.get('benchmark', '?')} / {_label(summary)}",
        "",
        f"model `{summary.get('model', summary.get('backend', '?'))}`, finished {summary.get('finished', '?')}",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| accuracy (%) | {shown} |",
        f"| problems | {summary.get('n', 0)} (graded {summary.get('graded', 0)}, correct {summary.get('correct', 0)}) |",
        f"| no answer found | {summary.get('unanswered', 0)} |",
        f"| tokens per problem | {summary.get('tokens_per_problem', 0):.1f} "
        f"(in {summary.get('tokens_in_per_problem', 0):.1f}, out {summary.get('tokens_out_per_problem', 0):.1f}) |",
        f"| calls per problem | {summary.get('calls_per_problem', 0):.2f} |",
        f"| wall seconds | {summary.get('wall_seconds', 0):.1f} |",
        f"| math grading timeouts | {summary.get('grading', {}).get('math_timeouts', 0)} |",
        "",
    ]
    samples = summary.get("samples") or {}
    if samples:
        lines += [
            f"## Per-sample metrics (n = {samples['n_samples']})",
            "",
            "| metric | value (%) |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {_pct(v)} |" for k, v in samples.items() if k != "n_samples"]
        lines.append("")
    for key, groups in (summary.get("breakdowns") or {}).items():
        lines += _breakdown_table(key, groups)
    if plot_name:
        lines += [f"![accuracy]({plot_name})", ""]
    return "\n".join(lines)


def write_report(run_dir: str | Path, summary: Mapping[str, Any]) -> None:
    """Write ``report.md`` and ``accuracy.png`` (by level, domain or subject when known) into ``run_dir``."""
    out = Path(run_dir)
    breakdowns = summary.get("breakdowns") or {}
    key = next((k for k in PREFERRED_BREAKDOWN if k in breakdowns), None)
    label = _label(summary)
    if key is not None:
        groups = {g: {label: 100 * (row["accuracy"] or 0.0)} for g, row in breakdowns[key].items()}
        title = f"{summary.get('benchmark', '')}: accuracy by {key}"
    else:
        groups = {str(summary.get("benchmark", "")): {label: 100 * (summary.get("accuracy") or 0.0)}}
        title = f"{summary.get('benchmark', '')}: accuracy"
    bar_plot(out / PLOT_NAME, groups, title=title, ylabel="accuracy (%)", ylim=(0, 100))
    atomic_write_text(out / "report.md", render_report(summary))


# ------------------------------------------------------------------ comparing runs


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a finished eval run (no summary.json); run reasonkit eval --out {run_dir} first"
        )
    data = read_json(path)
    if not isinstance(data, dict) or "accuracy" not in data:
        raise ValueError(f"{path} is not an eval summary (no 'accuracy' field)")
    return data


def compare_runs(run_dirs: Sequence[str | Path]) -> tuple[str, dict[str, dict[str, float]]]:
    """Two markdown tables, rows strategy (and model when runs differ), columns benchmark: accuracy in %
    with the problem count, then tokens per problem (what the accuracy cost); and the accuracies as
    ``{benchmark: {row: accuracy}}`` for a plot."""
    if not run_dirs:
        raise ValueError("give one or more run directories: reasonkit eval compare runs/a runs/b")
    summaries = [read_summary(d) for d in run_dirs]
    models = {str(s.get("model", s.get("backend"))) for s in summaries}
    cells: dict[str, dict[str, str]] = {}
    tokens: dict[str, dict[str, str]] = {}
    figures: dict[str, dict[str, float]] = {}
    for directory, s in zip(run_dirs, summaries):
        row = _label(s) if len(models) == 1 else f"{s.get('model', s.get('backend'))} / {_label(s)}"
        bench = str(s.get("benchmark", Path(directory).name))
        if bench in cells.get(row, {}):
            raise ValueError(f"two runs of {row} on {bench} (one is {directory}); compare one run per cell")
        cells.setdefault(row, {})[bench] = f"{_pct(s['accuracy'])} (n={s.get('n', 0)})"
        per = s.get("tokens_per_problem")
        tokens.setdefault(row, {})[bench] = "" if per is None else f"{per:.0f}"
        figures.setdefault(bench, {})[row] = 100 * (s["accuracy"] or 0.0)
    benches = list(figures)

    def table(values: dict[str, dict[str, str]]) -> list[str]:
        lines = [f"| strategy | {' | '.join(benches)} |", "|---|" + "---:|" * len(benches)]
        return lines + [
            f"| {row} | " + " | ".join(v.get(b, "") for b in benches) + " |" for row, v in values.items()
        ]

    model = f" — model {models.pop()}" if len(models) == 1 else ""
    parts = [
        f"accuracy (%){model}",
        "",
        *table(cells),
        "",
        "tokens per problem (prompt + completion, all calls)",
        "",
        *table(tokens),
    ]
    return "\n".join(parts) + "\n", figures


def compare_command(argv: Sequence[str]) -> int:
    """``reasonkit eval compare DIR... [--out table.md]`` (also writes table.png beside ``--out``)."""
    parser = argparse.ArgumentParser(
        prog="reasonkit eval compare",
        description="Strategy x benchmark tables (accuracy, tokens per problem) from eval runs.",
    )
    parser.add_argument("runs", nargs="+", help="eval run directories (each holds summary.json)")
    parser.add_argument("--out", help="write the table to this markdown file and a PNG beside it")
    args = parser.parse_args(list(argv))
    table, figures = compare_runs(args.runs)
    print(table, end="")
    if args.out:
        target = Path(args.out)
        atomic_write_text(target, table)
        bar_plot(target.with_suffix(".png"), figures, title="accuracy by benchmark", ylabel="accuracy (%)",
                 ylim=(0, 100))  # fmt: skip
    return 0
