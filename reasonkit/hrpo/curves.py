"""The PNG curves of a ``train-hrpo`` run, drawn from ``OUT/metrics.jsonl``:

- ``reward.png``: training reward per step (and its moving average), validation accuracy if measured;
- ``hidden_share.png``: the mean hidden share sqrt(1 − a²) over thinking tokens during rollouts;
- ``length.png``: completion length and thinking-span length (tokens).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from reasonkit.plots import line_plot
from reasonkit.rundir import read_jsonl


def moving_average(values: Sequence[float], window: int = 10) -> list[float]:
    """Trailing mean over up to ``window`` values (shorter at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def write_curves(out: Path) -> None:
    """Write the three plots (skipped where matplotlib is missing: metrics.jsonl holds everything)."""
    path = out / "metrics.jsonl"
    if importlib.util.find_spec("matplotlib") is None or not path.exists():
        return
    records = read_jsonl(path, tolerate_torn_tail=True)
    train = [r for r in records if "reward" in r]
    evals = [r for r in records if "eval_accuracy" in r]
    if not train:
        return
    steps = [r["step"] for r in train]
    rewards = [r["reward"] for r in train]
    series = {"reward": (steps, rewards), "reward (10-step mean)": (steps, moving_average(rewards))}
    if evals:
        series["validation accuracy (greedy)"] = (
            [r["step"] for r in evals],
            [r["eval_accuracy"] for r in evals],
        )
    line_plot(
        out / "reward.png", series, title="train-hrpo: reward", xlabel="step", ylabel="fraction", ylim=(0, 1)
    )
    shares = [r.get("hidden_share", 0.0) for r in train]
    line_plot(
        out / "hidden_share.png",
        {"hidden share": (steps, shares), "10-step mean": (steps, moving_average(shares))},
        title="train-hrpo: hidden share sqrt(1 - a^2) while thinking",
        xlabel="step",
        ylabel="share",
    )
    line_plot(
        out / "length.png",
        {
            "completion": (steps, [r["length"] for r in train]),
            "thinking span": (steps, [r["thinking_length"] for r in train]),
        },
        title="train-hrpo: completion length",
        xlabel="step",
        ylabel="tokens",
    )
