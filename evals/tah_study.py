"""The Think-at-Hard study: Standard / Always-2 / TaH trained alike, the paper's ablations, the decider
against its oracle, and depth by token difficulty — on the arith test split.

    reasonkit eval tah --out runs/tah-study                      # every arm: train, decode, tabulate
    reasonkit eval tah --out runs/tah-study --arms standard tah  # a subset (rerun to add the others)

Every arm is a ``reasonkit train-tah`` run (OUT/ARM) with the same data stream, steps and learning
rate, then greedy CoT decoding of the same test problems through ``tah:OUT/ARM/tah`` (OUT/evals/…,
controller run directories). Teacher-forced passes over gold test chains give the decider-versus-
oracle and difficulty tables. Everything resumes: rerunning skips what is done. Writes
``results.json``, ``results.md`` and ``accuracy.png``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reasonkit.backends.options import BackendOptions
from reasonkit.config import parse_config
from reasonkit.rundir import atomic_write_json, atomic_write_text, read_json

#: arm -> train-tah flags beyond the shared ones (paper names in docs/tah.md)
ARMS: dict[str, dict[str, Any]] = {
    "standard": {"route": "never", "max_depth": 1, "decider_steps": 0},
    "always2": {"route": "always", "decider_steps": 0},
    "tah": {"route": "oracle"},
    "root": {"route": "oracle", "attention": "root"},
    "same": {"route": "oracle", "attention": "same"},
    "nolora_noresidual": {"route": "oracle", "lora": False, "residual": False},
}
LABELS = {
    "standard": "Standard (continued fine-tuning, 1 pass)",
    "always2": "Always-2 (every token 2 passes)",
    "tah": "TaH (decider)",
    "root": "TaH, 2nd pass attends to pass 1 only",
    "same": "TaH, 2nd pass attends to its own pass only",
    "nolora_noresidual": "TaH without LoRA and residual logits",
}


@dataclass
class TaHStudyConfig(BackendOptions):
    """Train and compare Think-at-Hard, its baselines and ablations on the arith test split."""

    out: str = field(default="runs/tah-study", metadata={"help": "study directory (one run per arm)"})
    arms: tuple[str, ...] = field(default=tuple(ARMS), metadata={"help": f"arms to run, of {sorted(ARMS)}"})
    problems: Literal["arith", "arith-hard"] = field(default="arith-hard", metadata={"help": "problem set"})
    test_problems: int = field(default=1000, metadata={"help": "test problems decoded per arm (greedy CoT)"})
    steps: int = field(default=150, metadata={"help": "stage-1 steps of every arm"})
    decider_steps: int = field(default=100, metadata={"help": "stage-2 steps of the decider arms"})
    batch_size: int = field(default=16, metadata={"help": "pairs per step"})
    lr: float = field(default=3e-4, metadata={"help": "stage-1 learning rate of every arm"})
    val_pairs: int = field(default=128, metadata={"help": "validation pairs of each training run"})
    seed: int = field(default=420, metadata={"help": "data stream and initial weights"})
    thresholds: tuple[float, ...] = field(
        default=(), metadata={"help": "extra decider thresholds decoded for the tah arm (e.g. 0.5 0.97)"}
    )
    tah_never: bool = field(
        default=False,
        metadata={"help": "also decode the tah arm with its decider off (Always-1 of its weights)"},
    )
    teacher_forced_pairs: int = field(default=256, metadata={"help": "gold test chains for the token tables"})
    eval_batch_size: int = field(default=32, metadata={"help": "problems per decoding batch"})
    base: bool = field(default=True, metadata={"help": "also decode the untrained --model (context)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arms, self.thresholds = tuple(self.arms), tuple(float(t) for t in self.thresholds)
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms:
            raise ValueError(f"--arms takes some of {sorted(ARMS)}, got {list(self.arms)}")
        if min(self.test_problems, self.steps, self.batch_size, self.eval_batch_size) < 1:
            raise ValueError("test_problems, steps, batch_size and eval_batch_size must be >= 1")
        if any(not 0 <= t <= 1 for t in self.thresholds):
            raise ValueError(f"thresholds must lie in [0, 1], got {list(self.thresholds)}")


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def paired_difference(a: Sequence[bool], b: Sequence[bool]) -> tuple[float, float]:
    """Mean of a - b over the same problems and its standard error."""
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / max(1, n - 1)
    return mean, math.sqrt(var / n)


_RESULT_DIGIT = re.compile(r"=-?\d+")


def depth_by_character(text: str, depths: Sequence[int]) -> dict[str, list[int]]:
    """Character classes of a compact chain (one token per character): (iterated, total) per class."""
    result: set[int] = set()
    for m in _RESULT_DIGIT.finditer(text):
        result.update(range(m.start() + 1, m.end()))
    out: dict[str, list[int]] = {}
    for i, (ch, d) in enumerate(zip(text, depths)):
        kind = (
            "result digit"
            if i in result
            else "other digit"
            if ch.isdigit()
            else "operator/bracket"
            if ch in "+-*()"
            else "other"
        )
        counts = out.setdefault(kind, [0, 0])
        counts[0] += int(d > 1)
        counts[1] += 1
    return out


def decode_arm(cfg: TaHStudyConfig, label: str, spec: str, problems: list[Any]) -> dict[str, Any]:
    """Greedy CoT over ``problems`` with backend ``spec``; accuracy, depths and speed."""
    from reasonkit.controller import Controller
    from reasonkit.kit.baselines import CoT

    backend = cfg.load(spec)
    strategy: Any = CoT()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()
    result = Controller(backend, strategy, out_dir=Path(cfg.out) / "evals" / slug, batch_size=cfg.eval_batch_size,
                        progress=cfg.progress).run(problems)  # fmt: skip
    correct = [bool(t.correct) for t in result.traces]
    depths = [d for t in result.traces for s in t.steps for d in s.meta.get("tah", {}).get("depths", [])]
    by_char: dict[str, list[int]] = {}
    for t in result.traces:
        for s in t.steps:
            if "tah" in s.meta:
                for kind, (it, n) in depth_by_character(s.output, s.meta["tah"]["depths"]).items():
                    by_char.setdefault(kind, [0, 0])
                    by_char[kind][0] += it
                    by_char[kind][1] += n
    tokens = sum(s.cost.tokens_out for t in result.traces for s in t.steps)
    return {
        "label": label,
        "spec": spec,
        "n": len(correct),
        "accuracy": sum(correct) / len(correct),
        "interval": wilson(sum(correct), len(correct)),
        "correct": correct,
        "mean_depth": sum(depths) / len(depths) if depths else 1.0,
        "iterated_share": sum(d > 1 for d in depths) / len(depths) if depths else 0.0,
        "iterated_by_character": {k: v[0] / v[1] for k, v in by_char.items() if v[1]},
        "tokens": tokens,
        "tokens_per_second": tokens / max(1e-9, result.summary.get("wall_seconds", 0.0)),
    }


def teacher_forced_tables(cfg: TaHStudyConfig, arm: str) -> dict[str, Any]:
    """Decider-vs-oracle and difficulty sums on gold test chains (cached in OUT/ARM/teacher_forced.json)."""
    path = Path(cfg.out) / arm / "teacher_forced.json"
    if path.exists():
        return dict(read_json(path))
    from reasonkit.backends.loading import load_backend
    from reasonkit.tah.data import cot_pairs
    from reasonkit.tah.evaluation import summarize, teacher_forced
    from reasonkit.tah.train import micro_batches

    backend: Any = cfg.load(f"tah:{Path(cfg.out) / arm / 'tah'}")
    reference: Any = load_backend(cfg.model)
    batches = micro_batches(
        backend, cot_pairs(cfg.problems, "test", cfg.seed, 0, cfg.teacher_forced_pairs), 4096
    )
    model = backend.hooks.model
    tables = {"own": summarize(teacher_forced(model, batches, reference.model))}
    if model.config.route == "decider":
        tables["oracle"] = summarize(teacher_forced(model, batches, reference.model, route="oracle"))
        tables["never"] = summarize(teacher_forced(model, batches, reference.model, route="never"))
    atomic_write_json(path, tables)
    return tables


def run_study(cfg: TaHStudyConfig) -> dict[str, Any]:
    from reasonkit.tah.train import train_tah
    from reasonkit.tah.train_config import TrainTaHConfig
    from reasonkit.tasks import arith

    out = Path(cfg.out)
    problems = arith.generate(
        cfg.test_problems, split="test", seed=0, config=arith.problem_config(cfg.problems)
    )
    shared = dict(model=cfg.model, threads=cfg.threads, problems=cfg.problems, steps=cfg.steps, batch_size=cfg.batch_size,
                  lr=cfg.lr, val_pairs=cfg.val_pairs, seed=cfg.seed, decider_steps=cfg.decider_steps, progress=cfg.progress)  # fmt: skip
    results: dict[str, Any] = {
        "config": {k: v for k, v in vars(cfg).items()},
        "decoded": {},
        "teacher_forced": {},
    }
    if cfg.base:
        results["decoded"]["base"] = decode_arm(
            cfg, f"Base model {cfg.model} (no fine-tuning)", cfg.model, problems
        )
    for arm in cfg.arms:
        train_tah(TrainTaHConfig(**{**shared, **ARMS[arm], "out": str(out / arm)}))  # resumes when done
        spec = f"tah:{out / arm / 'tah'}"
        results["decoded"][arm] = decode_arm(cfg, LABELS[arm], spec, problems)
        if arm == "tah" and cfg.tah_never:
            results["decoded"]["tah_never"] = decode_arm(
                cfg, "TaH model, decider never fires (Always-1)", f"{spec}#route=never", problems
            )
        if arm == "tah":
            for t in cfg.thresholds:
                results["decoded"][f"tah_t{t:g}"] = decode_arm(
                    cfg, f"TaH, threshold {t:g}", f"{spec}#threshold={t}", problems
                )
        results["teacher_forced"][arm] = teacher_forced_tables(cfg, arm)
        atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", render(results))
    plot(results, out / "accuracy.png")
    return results


def render(results: dict[str, Any]) -> str:
    decoded = results["decoded"]
    lines = ["| arm | accuracy (95 % CI) | vs Standard (±1.96 SE, paired) | mean depth | tokens iterating | tokens/s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    std = decoded.get("standard")
    for row in decoded.values():
        lo, hi = row["interval"]
        diff = "—"
        if std is not None and row is not std:
            d, se = paired_difference(row["correct"], std["correct"])
            diff = f"{100 * d:+.1f} ± {196 * se:.1f}"
        lines.append(f"| {row['label']} | {100 * row['accuracy']:.1f} % ({100 * lo:.1f}–{100 * hi:.1f}) | {diff} | "
                     f"{row['mean_depth']:.3f} | {100 * row['iterated_share']:.2f} % | {row['tokens_per_second']:.0f} |")  # fmt: skip
    lines += ["", "Teacher-forced on gold test chains (token level):", "",
              "| arm | routing | token acc | exact chains | iterating | 1st pass wrong | iterate if 1st wrong | "
              "iterate if 1st right | fixed / wrong | broken / right | agreement with oracle | recall | precision |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{100 * x:.2f} %"

    for arm, tables in results["teacher_forced"].items():
        for routing, t in tables.items():
            keys = ("token_acc", "exact", "iterated_share", "first_pass_error", "iterate_if_wrong", "iterate_if_right",
                    "fixed_share_of_wrong", "broken_share_of_right", "decider_agreement", "decider_recall", "decider_precision")  # fmt: skip
            lines.append(f"| {arm} | {routing} | " + " | ".join(pct(t.get(k)) for k in keys) + " |")
    tah = decoded.get("tah")
    if tah and tah["iterated_by_character"]:
        lines += ["", "Share of generated tokens iterating, by character (TaH, decoding):", ""]
        lines += [f"- {k}: {100 * v:.2f} %" for k, v in sorted(tah["iterated_by_character"].items())]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return
    from reasonkit.plots import bar_plot

    rows = list(results["decoded"].values())
    groups = {r["label"]: {"accuracy": r["accuracy"]} for r in rows}
    half = {r["label"]: {"accuracy": (r["interval"][1] - r["interval"][0]) / 2} for r in rows}
    bar_plot(
        path,
        groups,
        title="Think-at-Hard study: greedy CoT accuracy (95 % CI)",
        ylabel="accuracy",
        errors=half,
    )


def study_command(argv: Sequence[str]) -> int:
    cfg = parse_config(TaHStudyConfig, argv, prog="reasonkit eval tah")
    results = run_study(cfg)
    print(render(results))
    print(f"written: {Path(cfg.out) / 'results.md'}")
    return 0
