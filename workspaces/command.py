"""``reasonkit train-workspace``: the addition study of arXiv 2503.01906, end to end.

    reasonkit train-workspace --variant onehot --out runs/ws-onehot
    python -m reasonkit.workspaces --variant images --out runs/ws-images   # same, without the CLI table

Trains "gw", "lstm" and "transformer" on the same batches for every seed, then writes into DIR:
``config.json``, ``metrics.jsonl`` (one line per evaluation), ``checkpoints/``, ``runs/`` (one
summary per model and seed), ``results.json`` (parameter counts and mean ± std accuracy per split),
``accuracy.png`` (bars with std) and ``curves.png`` (accuracy against training step); ``run.json``
holds the settings that define the study. Running the same command again resumes where it stopped;
a directory made with other settings, or in use by another process, is refused
(:func:`reasonkit.rundir.claim`).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reasonkit.config import config_to_dict, parse_config
from reasonkit.plots import bar_plot, line_plot
from reasonkit.rundir import atomic_write_json, claim, read_jsonl
from reasonkit.workspaces.addition import SPLITS, AdditionTask, DigitPool, make_pairs
from reasonkit.workspaces.config import RESULT_FIELDS, WorkspaceConfig
from reasonkit.workspaces.models import both_digits_read, train_digit_encoder
from reasonkit.workspaces.number_modules import DigitEncoder
from reasonkit.workspaces.train import CHECKPOINT_FORMAT, load_encoder, save_checkpoint, train_run

SPLIT_DESCRIPTIONS = {
    "train": "training pairs: (1 - holdout_fraction) of [0, R)^2",
    "interpolation": "held-out pairs of [0, R)^2",
    "extrapolation": "a in [R, E), b in [0, R): first addend and sum beyond the training range",
    "extrapolation_b": "b in [R, E), a in [0, E): more increments than ever trained",
}


def _encoder_for_seed(
    out: Path, config: WorkspaceConfig, pool: DigitPool, seed: int
) -> tuple[DigitEncoder, float]:
    """The pretrained digit encoder shared by every model of ``seed`` (trained once, then loaded)."""
    assert config.code_size is not None
    path = out / "checkpoints" / f"encoder-seed{seed}.pt"
    if path.exists():
        return load_encoder(path, config.code_size)
    encoder, accuracy = train_digit_encoder(pool, config.code_size, config.encoder_steps, seed)
    save_checkpoint(
        path, {"format": CHECKPOINT_FORMAT, "model": encoder.state_dict(), "test_accuracy": accuracy}
    )
    return encoder, accuracy


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "per_seed": [round(v, 4) for v in values],
    }


def summarise(config: WorkspaceConfig, runs: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """results.json: per model, parameter count and mean ± sample std accuracy over seeds per split."""
    models: dict[str, Any] = {}
    for name in config.models:
        mine = [r for r in runs if r["model"] == name]
        # the four splits, then breakdowns (interpolation by commuted pair) that every seed has
        breakdowns = [
            k for k in mine[0]["accuracy"] if k not in SPLITS and all(k in r["accuracy"] for r in mine)
        ]
        models[name] = {
            "params": mine[0]["params"],
            "seeds": [r["seed"] for r in mine],
            "accuracy": {s: _mean_std([r["accuracy"][s] for r in mine]) for s in (*SPLITS, *breakdowns)},
            "train_seconds": _mean_std([r["train_seconds"] for r in mine]),
        }
        if any(r.get("learned") for r in mine):
            models[name]["learned_per_seed"] = [r.get("learned", {}) for r in mine]
    return {"variant": config.variant, "models": models, "splits": extra.pop("splits"), **extra}


def _plots(out: Path, results: dict[str, Any]) -> None:
    groups = {s: {m: v["accuracy"][s]["mean"] for m, v in results["models"].items()} for s in SPLITS}
    errors = {s: {m: v["accuracy"][s]["std"] for m, v in results["models"].items()} for s in SPLITS}
    title = f"addition ({results['variant']}): accuracy, mean ± std over seeds"
    bar_plot(
        out / "accuracy.png",
        groups,
        title=title,
        ylabel="exact-match accuracy",
        ylim=(0, 1.05),
        errors=errors,
    )
    by_key: dict[tuple[str, int, int], dict[str, Any]] = {}
    for record in read_jsonl(out / "metrics.jsonl", tolerate_torn_tail=True):
        by_key[(record["model"], record["seed"], record["step"])] = (
            record  # a resumed run rewrites; last wins
        )
    series = {}
    for model in results["models"]:
        for split in ("interpolation", "extrapolation"):
            steps = sorted({k[2] for k in by_key if k[0] == model})
            means = [
                statistics.fmean(r[f"acc_{split}"] for k, r in by_key.items() if k[0] == model and k[2] == s)
                for s in steps
            ]
            series[f"{model} {split}"] = (steps, means)
    line_plot(
        out / "curves.png", series, title="accuracy during training (mean over seeds)",
        xlabel="optimiser step", ylabel="accuracy", ylim=(0, 1.05),
    )  # fmt: skip


def run_study(config: WorkspaceConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train every model on every seed (resuming), then write results.json and the plots."""
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    current = config_to_dict(config)
    # the fields that change results define the run; the others (threads, eval_every …) may differ
    with claim(out, {k: current[k] for k in RESULT_FIELDS}, what="study"):
        atomic_write_json(out / "config.json", current)
        return _run_study(config, out, progress)


def _run_study(config: WorkspaceConfig, out: Path, progress: bool) -> dict[str, Any]:
    from reasonkit.progress import progress_bar

    assert config.addend_range is not None and config.extrapolation_range is not None
    assert config.code_size is not None and config.steps is not None
    pairs = make_pairs(
        config.addend_range, config.extrapolation_range, config.holdout_fraction, config.split_seed
    )
    pool = DigitPool.load(config.split_seed) if config.variant == "images" else None
    task = AdditionTask(
        config.variant,
        pairs,
        config.code_size,
        digits=pool,
        eval_draws=config.eval_draws,
        split_seed=config.split_seed,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    runs, encoder_accuracy, ceilings = [], [], []
    total = config.steps * len(config.seeds) * len(config.models)
    with progress_bar(
        total=total, desc=f"train-workspace {config.variant}", unit="step", enabled=progress
    ) as bar:
        for seed in config.seeds:
            encoder = None
            if pool is not None:
                encoder, accuracy = _encoder_for_seed(out, config, pool, seed)
                encoder_accuracy.append(accuracy)
                ceilings.append(
                    {s: both_digits_read(encoder, task.eval_set(s)[0], task.eval_pairs(s)) for s in SPLITS}
                )
            for model in config.models:
                bar.set_postfix_str(f"{model} seed {seed}")

                def on_step(n: int, loss: float, label: str = f"{model} seed {seed}") -> None:
                    bar.update(n)
                    if loss == loss:  # not NaN (NaN marks a resumed step count)
                        bar.set_postfix_str(f"{label} loss {loss:.3f}")

                before = bar.n
                runs.append(train_run(model, seed, config, task, out, encoder=encoder, on_step=on_step))
                bar.update(before + config.steps - bar.n)  # a run finished earlier counts in full
    extra: dict[str, Any] = {
        "splits": {s: {"pairs": len(pairs[s]), "description": SPLIT_DESCRIPTIONS[s]} for s in SPLITS},
        "machine": {
            "threads": config.threads,
            "cpu_count": os.cpu_count(),
            "load_average_at_start": round(load, 2) if load is not None else None,
            "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
        },
    }
    if encoder_accuracy:
        extra["digit_encoder"] = {
            "params": sum(p.numel() for p in DigitEncoder(config.code_size).parameters()),
            "held_out_accuracy": _mean_std(encoder_accuracy),
            "both_digits_read": {s: _mean_std([c[s] for c in ceilings]) for s in SPLITS},
            "note": "shared, frozen input representation of all three models; not counted in their params. "
            "both_digits_read: evaluation items whose two digits it classifies right (the ceiling of a model "
            "that needs both argmaxes right; the router reads b's whole distribution and can pass it slightly)",
        }
    results = summarise(config, runs, extra)
    atomic_write_json(out / "results.json", results)
    _plots(out, results)
    return results


def format_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table (accuracy mean ± std over seeds)."""
    header = "| model | params | " + " | ".join(SPLITS) + " |"
    lines = [header, "|" + "---|" * (2 + len(SPLITS))]
    for name, entry in results["models"].items():
        cells = [f"{entry['accuracy'][s]['mean']:.3f} ± {entry['accuracy'][s]['std']:.3f}" for s in SPLITS]
        lines.append(f"| {name} | {entry['params']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train_workspace_command(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``reasonkit train-workspace``: parse the config, run the study, print the table."""
    config = parse_config(WorkspaceConfig, argv, prog="reasonkit train-workspace")
    results = run_study(config)
    print(format_table(results))
    print(f"results: {Path(config.out) / 'results.json'}  plots: {Path(config.out) / 'accuracy.png'}")
    return 0
