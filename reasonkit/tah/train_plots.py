"""``loss.png`` and ``decider.png`` of a train-tah run directory, from its ``metrics.jsonl``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from reasonkit.rundir import read_jsonl


def write_plots(out: Path) -> None:
    """Stage 1's losses and accuracies (train and validation); stage 2's decider metrics. Skipped where
    matplotlib is missing (a bare GPU image: metrics.jsonl has it all)."""
    if importlib.util.find_spec("matplotlib") is None or not (out / "metrics.jsonl").exists():
        return
    from reasonkit.plots import line_plot

    records = read_jsonl(out / "metrics.jsonl", tolerate_torn_tail=True)

    def series(stage: str, key: str) -> tuple[list[float], list[float]]:
        rows = [r for r in records if r.get("stage") == stage and r.get(key) is not None]
        return [r["step"] for r in rows], [r[key] for r in rows]

    stage1 = {"train": series("backbone", "loss"), "validation": series("backbone", "val_loss")}
    if stage1["train"][0]:
        line_plot(
            out / "loss.png",
            stage1,
            title="train-tah stage 1: cross-entropy",
            xlabel="step",
            ylabel="nats/token",
        )
    stage2 = {
        "train agreement": series("decider", "agreement"),
        "train recall": series("decider", "recall"),
        "val agreement": series("decider", "val_decider_agreement"),
        "val recall": series("decider", "val_decider_recall"),
        "val precision": series("decider", "val_decider_precision"),
    }
    stage2 = {k: v for k, v in stage2.items() if v[0]}
    if stage2:
        line_plot(
            out / "decider.png",
            stage2,
            title="train-tah stage 2: decider vs oracle",
            xlabel="step",
            ylabel="fraction",
            ylim=(0, 1),
        )
