"""A search run's ``summary.json``, ``report.md`` and plots, rebuilt from whatever the run directory holds.

``reasonkit cola report DIR`` (and every search, control, recall or predictor run that writes into
DIR) calls :func:`write_run_report`: the search figures (:mod:`.stats`) always; the controls
(``controls.json``: pass@K sampling and random-path search with the same number of model calls),
the recall against exhaustive enumeration (``recall.json``) and the predictor's held-out evaluation
(``predictor/evaluation.json``) when they exist. Oracle figures and deployable (no answer key)
figures are kept in separate sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonkit.cola.records import SearchRecord, read_records
from reasonkit.cola.stats import speed, summarize
from reasonkit.plots import bar_plot, scatter_plot
from reasonkit.rundir import atomic_write_json, atomic_write_text, read_json


def write_run_report(out: str | Path) -> dict[str, Any]:
    """Write summary.json, report.md and the PNGs of run directory ``out``; return the summary."""
    out = Path(out)
    records_file = out / "searches.jsonl"
    if not records_file.is_file():
        raise FileNotFoundError(
            f"{out} holds no search results ({records_file.name} is missing); run `reasonkit cola search "
            f"--out {out}` first"
        )
    records = read_records(records_file)
    summary = summarize(records)
    summary["speed"] = speed(out / "metrics.jsonl", len(records))
    run = read_json(out / "run.json") if (out / "run.json").is_file() else {}
    summary["run"] = {
        k: run.get(k) for k in ("model", "bench", "call", "moves", "simulations", "seed") if k in run
    }
    extras = {name: _optional_json(out / file) for name, file in EXTRAS.items()}
    summary.update({name: value for name, value in extras.items() if value is not None})
    atomic_write_json(out / "summary.json", summary)
    if records:
        _plots(out, records, summary)
    atomic_write_text(out / "report.md", render(summary))
    return summary


EXTRAS = {"controls": "controls.json", "recall": "recall.json", "predictor": "predictor/evaluation.json"}


def _optional_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def _plots(out: Path, records: Sequence[SearchRecord], summary: dict[str, Any]) -> None:
    lengths = summary["shortest_correct_lengths"]
    if lengths:
        bar_plot(
            out / "shortest_correct_lengths.png",
            {str(k): {"problems": float(v)} for k, v in lengths.items()},
            title=f"Shortest correct path found per problem (model: {summary['layers']} layers)",
            ylabel="problems",
        )
    # every problem's Pareto points, jittered so that 0/1 rewards at one length show their count
    xs, ys = [], []
    for i, record in enumerate(records):
        for path, outcome in record.scored.items():
            if _on_front(record, path):
                xs.append(len(path) + 0.3 * ((i * 7919) % 11 / 10 - 0.5))
                ys.append(outcome.reward + 0.08 * ((i * 104729) % 13 / 12 - 0.5))
    frontier = summary["oracle_by_length"]
    scatter_plot(
        out / "pareto.png",
        {"per-problem Pareto points (jittered)": (xs, ys)},
        lines={
            "oracle accuracy with paths of <= L layers": (
                list(map(float, frontier)),
                list(frontier.values()),
            ),
            "default path": ([float(summary["layers"])], [summary["default_accuracy"]]),
        },
        title="Accuracy against layers executed",
        xlabel="layers executed (L)",
        ylabel="correct",
        ylim=(-0.1, 1.1),
    )


def _on_front(record: SearchRecord, path: tuple[int, ...]) -> bool:
    from reasonkit.cola.records import pareto_set

    return path in set(pareto_set(record.scored))


def _pct(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("share") is None:
        return "n/a"
    low, high = entry["ci95"]
    return (
        f"{100 * entry['share']:.1f} % ({entry['k']}/{entry['n']}; 95 % CI {100 * low:.1f}-{100 * high:.1f})"
    )


def render(summary: dict[str, Any]) -> str:
    """report.md: the search's oracle figures, then the controls, recall and predictor when present."""
    run = summary.get("run", {})
    lines = [
        "# Chain-of-layers search",
        "",
        f"Model {run.get('model', '?')}, benchmark {run.get('bench', '?')}, prompt `{run.get('call', '?')}`, "
        f"moves {run.get('moves', '?')}, {run.get('simulations', '?')} simulations per problem, seed "
        f"{run.get('seed', '?')}. {summary['problems']} problems; the model has {summary['layers']} layers.",
        "",
        "## Oracle figures (the search reads the answer key)",
        "",
        "| figure | value | paper |",
        "|---|---|---|",
        f"| default path accuracy | {_pct(summary['default'])} | |",
        f"| oracle accuracy (any scored path correct) | {_pct(summary['oracle'])} | e.g. 76.0 -> 95.8 (ARC-E) |",
        f"| originally correct with a strictly shorter correct path | {_pct(summary['shorter_share'])} | > 75 % |",
        f"| originally wrong with a correct path | {_pct(summary['fixed_share'])} | > 60 % |",
        f"| mean length of the shortest correct path | {summary['mean_shortest_correct']} | |",
        f"| distinct paths scored per problem | {summary['scored_paths_per_problem']} | |",
        "",
        "Originally correct problems with a correct path of at most L layers: "
        + ", ".join(f"L={k}: {_pct(v)}" for k, v in summary["shorter_by_length"].items()),
        "",
    ]
    if summary.get("by_group"):
        lines += ["| group | problems | default | oracle | shorter (of correct) |", "|---|---|---|---|---|"]
        for name, g in summary["by_group"].items():
            shorter = "n/a" if g["shorter_share"] is None else f"{g['shorter_share']:.3f}"
            lines.append(
                f"| {name} | {g['problems']} | {g['default_accuracy']:.3f} | {g['oracle_accuracy']:.3f} | {shorter} |"
            )
        lines.append("")
    lines += _speed_section(summary.get("speed") or {})
    lines += _controls_section(summary.get("controls"))
    lines += _recall_section(summary.get("recall"))
    lines += _predictor_section(summary.get("predictor"))
    lines += [
        "Plots: `shortest_correct_lengths.png`, `pareto.png`. Per-problem records: `searches.jsonl`.",
        "",
    ]
    return "\n".join(lines)


def _speed_section(s: dict[str, Any]) -> list[str]:
    if not s:
        return []
    return [
        "## Cost",
        "",
        f"{s['simulations']} simulations, {s['model_calls']} model calls ({s['calls_per_simulation']} per "
        f"simulation, {s['rows_per_call']} problems per call), {s['seconds']} s over {s['sessions']} session(s): "
        f"{s['problems_per_minute']} problems per minute.",
        "",
    ]


def _controls_section(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    lines = [
        "## Controls with the same number of model calls",
        "",
        f"{c.get('note', '')}",
        "",
        "| method | model calls per problem | oracle accuracy | originally wrong fixed | shorter correct path |",
        "|---|---|---|---|---|",
    ]
    for name, m in c["methods"].items():
        lines.append(
            f"| {name} | {m['calls_per_problem']} | {_pct(m['oracle'])} | {_pct(m['fixed_share'])} | "
            f"{_pct(m.get('shorter_share'))} |"
        )
    return [*lines, "", c.get("verdict", ""), ""]


def _recall_section(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    return [
        "## MCTS recall against exhaustive enumeration",
        "",
        f"{r['problems']} problems x {r['paths']} paths (every path of the grammar), prompt `{r.get('call')}`.",
        "",
        "| figure | exhaustive | MCTS |",
        "|---|---|---|",
        f"| oracle accuracy | {_pct(r['exhaustive']['oracle'])} | {_pct(r['mcts']['oracle'])} |",
        f"| originally correct with a shorter correct path | {_pct(r['exhaustive']['shorter_share'])} | "
        f"{_pct(r['mcts']['shorter_share'])} |",
        f"| originally wrong fixed | {_pct(r['exhaustive']['fixed_share'])} | {_pct(r['mcts']['fixed_share'])} |",
        "",
        f"Of the problems with a correct path, MCTS found one for {_pct(r['found_any'])} and one as short as the "
        f"exhaustive shortest for {_pct(r['found_shortest'])}; mean excess length {r['mean_excess_layers']} layers.",
        "",
    ]


def _predictor_section(p: dict[str, Any] | None) -> list[str]:
    if not p:
        return []
    lines = [
        "## Path predictor on held-out problems (no answer key: one path per question)",
        "",
        f"{p['heldout']} held-out problems, {p['candidates']} candidate paths, trained on {p['trained_on']} "
        "searched problems.",
        "",
        "| path choice | accuracy | mean layers executed |",
        "|---|---|---|",
    ]
    for name, row in p["rows"].items():
        lines.append(f"| {name} | {_pct(row['accuracy'])} | {row['mean_layers']} |")
    return [*lines, "", p.get("verdict", ""), ""]


def report_command(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="reasonkit cola report",
        description="Rebuild report.md, summary.json and the plots of search runs.",
    )
    parser.add_argument("runs", nargs="+", help="run directories of `reasonkit cola search`")
    args = parser.parse_args(list(argv))
    rows = []
    for run in args.runs:
        summary = write_run_report(run)
        rows.append((run, summary))
        print(f"{run}: report -> {Path(run) / 'report.md'}")
    if len(rows) > 1:
        print(compare_table(rows))
    return 0


def compare_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One line per run: the ablation table (skip-only, repeat-only, both)."""
    lines = [
        "| run | moves | problems | default | oracle | shorter correct path | wrong fixed | paths scored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run, s in rows:
        lines.append(
            f"| {run} | {s.get('run', {}).get('moves', '?')} | {s['problems']} | {_pct(s['default'])} | "
            f"{_pct(s['oracle'])} | {_pct(s['shorter_share'])} | {_pct(s['fixed_share'])} | "
            f"{s['scored_paths_per_problem']} |"
        )
    return "\n".join(lines)
