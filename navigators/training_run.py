"""The run directory of ``reasonkit train-navigator``: what it holds, and how a run resumes from it.

    OUT/run.json                 the config that defines the run (a rerun must match it)
    OUT/navigator.safetensors    the navigator at the last checkpoint (the result)
    OUT/navigator-best.safetensors   the checkpoint with the best validation accuracy so far
    OUT/state.json               episodes done, evaluations, the baselines measured on the validation
                                 problems (Direct, CoT, fixed sequences; measured once, never on resume):
                                 the commit point of a checkpoint
    OUT/metrics.jsonl            one row per evaluation (validation accuracy, tokens, block histogram …)
    OUT/episodes.jsonl           one row per training episode (problem, blocks, return, correct)
    OUT/learning_curve.png       validation accuracy and training success against episodes, with CoT, the
                                 direct prompt and the best fixed sequence as dashed lines
    OUT/cache.sqlite             every backend call made (a resumed run repeats none of them)
    OUT/summary.json             the final figures (written when training ends)

Files are written atomically and ``state.json`` last. A rerun of an unfinished run (killed at any
moment, checkpoint writes included) *replays* it: it starts again from the seed with every backend
call answered by ``cache.sqlite``, rewrites the JSONL rows, navigators and plots, and trains on
past the interruption. Training is deterministic on one machine (tests/navigators), so the finished
run equals an uninterrupted one — counters, navigator and every row — while no network, optimiser
or replay-buffer state is ever loaded from the directory: nothing in it is unpickled or executed.
Replaying costs the DQN updates and the env's bookkeeping, not the model's time (with ``--cache
false`` the model is called again, and a non-deterministic model then gives another valid run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasonkit.plots import line_plot
from reasonkit.rundir import (
    Claim,
    RunDirError,
    atomic_write_json,
    claim,
    iter_jsonl,
    read_json,
)

#: Config fields that may change between a run and its resumption (everything else must match).
#: ``fixed_baselines`` only adds measurements (a resumed run measures the sequences it lacks).
RESUMABLE_CHANGES = frozenset(
    {"episodes", "eval_every", "progress", "out", "threads", "cache", "fixed_baselines", "request_timeout",
     "max_retries"}
)  # fmt: skip


class TrainingRun:
    """Paths and bookkeeping of one training run directory."""

    def __init__(self, out: str | Path) -> None:
        self.dir = Path(out)

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def navigator_path(self) -> Path:
        return self.path("navigator.safetensors")

    # -- identity and state -----------------------------------------------------------------------
    def claim(self, config: dict[str, Any]) -> Claim:
        """Take the directory for this run (:func:`reasonkit.rundir.claim`: the config fields that define
        the run must match ``run.json``; another process on it is refused); hold it while training."""
        identity = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
        return claim(self.dir, identity, what="training run")

    def load_state(self) -> dict[str, Any]:
        """The committed state ({} for a new run)."""
        state = read_json(self.path("state.json")) if self.path("state.json").exists() else {}
        if not isinstance(state, dict):
            raise RunDirError(
                f"{self.path('state.json')} is not a JSON object; delete it to start the run over"
            )
        return state

    def restart(self, state: dict[str, Any]) -> dict[str, Any]:
        """Start (or replay) the run from episode 0: the JSONL rows are written again as it goes. What
        survives is what is never recomputed: the baselines measured once, and the wall time so far."""
        for name in ("episodes.jsonl", "metrics.jsonl"):
            self.path(name).unlink(missing_ok=True)
        kept: dict[str, Any] = {
            k: state[k] for k in ("baselines", "direct_accuracy", "wall_seconds") if k in state
        }
        return {**kept, "legs": int(state.get("legs", 0)) + 1}

    def metrics(self) -> list[dict[str, Any]]:
        path = self.path("metrics.jsonl")
        return [row for _, row in iter_jsonl(path)] if path.exists() else []

    # -- checkpoints ------------------------------------------------------------------------------
    def append(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.path(name).open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.path("state.json"), state)

    def plot(
        self, baselines: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, tuple[list[Any], list[Any]]]:
        """Draw the learning curve, with each baseline's validation accuracy as a flat line; return its
        series (legend label -> (episodes, accuracies)).

        ``baselines``: name (``direct``, ``cot``, ``fixed:...``) -> ``accuracy``, ``tokens_per_problem``;
        of the fixed sequences only the most accurate is drawn.
        """
        rows = self.metrics()
        if not rows:
            return {}
        xs = [r["episode"] for r in rows]
        series: dict[str, tuple[list[Any], list[Any]]] = {
            "validation accuracy (greedy navigator)": (xs, [r["val_accuracy"] for r in rows]),
            "training success (last 100 episodes)": (xs, [r["train_success"] for r in rows]),
        }
        lines = baseline_lines(baselines or {})
        for label, row in lines:
            series[label] = (xs, [row["accuracy"]] * len(xs))
        line_plot(
            self.path("learning_curve.png"),
            series,
            title="RL-of-Thoughts navigator training",
            xlabel="training episodes",
            ylabel="accuracy",
            ylim=(0.0, 1.0),
            references=[label for label, _ in lines],
        )
        return series


def baseline_lines(baselines: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Legend labels and rows of the baselines a learning curve shows (CoT, Direct, the best fixed
    sequence), e.g. ``CoT: 0.78 (147 tokens/problem)``."""
    lines = []
    for name, label in (("cot", "CoT"), ("direct", "direct prompt")):
        if name in baselines:
            lines.append((label, baselines[name]))
    fixed = best_fixed(baselines)
    if fixed is not None:
        lines.append((f"best fixed sequence {fixed['label']}", fixed))
    return [
        (f"{label}: {row['accuracy']:.2f} ({row['tokens_per_problem']:.0f} tokens/problem)", row)
        for label, row in lines
    ]


def best_fixed(baselines: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The most accurate fixed sequence measured (fewest tokens on a tie), or None when none was."""
    fixed = [(name, row) for name, row in baselines.items() if name.startswith("fixed:")]
    if not fixed:
        return None
    name, row = max(fixed, key=lambda item: (item[1]["accuracy"], -item[1]["tokens_per_problem"]))
    return {"sequence": name.removeprefix("fixed:"), "label": sequence_label(name), **row}


def sequence_label(name: str) -> str:
    """``fixed:reason,reason,reason`` -> ``reason ×3``; ``decompose,reason,reason`` -> ``decompose, reason ×2``."""
    blocks = name.removeprefix("fixed:").split(",")
    runs: list[list[Any]] = []
    for block in blocks:
        if runs and runs[-1][0] == block:
            runs[-1][1] += 1
        else:
            runs.append([block, 1])
    return ", ".join(block if count == 1 else f"{block} ×{count}" for block, count in runs)
