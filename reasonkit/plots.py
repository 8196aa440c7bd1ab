"""Small PNG plots for run directories (learning curves, accuracy bars), written atomically.

matplotlib runs headless (Agg) and is imported lazily so importing reasonkit stays fast.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from reasonkit.rundir import atomic_write_bytes


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    plt = pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def line_plot(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    references: Collection[str] = (),
) -> None:
    """One line per entry of ``series`` (name -> (xs, ys)); the names in ``references`` (baselines,
    targets) are drawn dashed, without markers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, (xs, ys) in series.items():
        if name in references:
            ax.plot(list(xs), list(ys), linestyle="--", label=name)
        else:
            ax.plot(list(xs), list(ys), marker="o" if len(xs) <= 30 else None, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    save_figure(fig, path)


def bar_plot(
    path: str | Path,
    groups: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    errors: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """Grouped bars: ``groups[group][series] = value`` (e.g. accuracy by level for each strategy)."""
    plt = pyplot()
    group_names = list(groups)
    series_names: list[str] = []
    for values in groups.values():
        for name in values:
            if name not in series_names:
                series_names.append(name)
    width = 0.8 / max(1, len(series_names))
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(group_names) * max(1, len(series_names)) / 2), 4.0))
    for i, series in enumerate(series_names):
        xs = [g + (i - (len(series_names) - 1) / 2) * width for g in range(len(group_names))]
        ys = [groups[g].get(series, 0.0) for g in group_names]
        errs = [errors[g].get(series, 0.0) for g in group_names] if errors else None
        ax.bar(xs, ys, width=width, label=series, yerr=errs, capsize=3 if errs else 0)
    ax.set_xticks(range(len(group_names)))
    ax.set_xticklabels(group_names, rotation=20 if max(map(len, group_names), default=0) > 8 else 0)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    if len(series_names) > 1:
        ax.legend()
    save_figure(fig, path)


def scatter_plot(
    path: str | Path,
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    lines: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Scattered ``points`` (name -> (xs, ys), drawn translucent so overlaps show density) with optional
    ``lines`` over them (a frontier, a reference), drawn as steps."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, (xs, ys) in points.items():
        ax.scatter(list(xs), list(ys), s=14, alpha=0.35, label=name)
    for name, (xs, ys) in (lines or {}).items():
        ax.step(list(xs), list(ys), where="post", marker="o" if len(xs) <= 30 else None, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
