"""Quality of a built-in-style model on the arith TEST split: the numbers issue 4 sets targets for.

    reasonkit eval lm --model builtin                  # the shipped model
    reasonkit eval lm --model runs/lm/model --out eval.json --markdown eval.md

What it measures (all greedy, through :class:`~reasonkit.backends.hf.HFBackend` and the pack the model
declares — compact, or compact2 from v4 on — so it is exactly what users of ``load_backend(...)`` get):

* **CoT accuracy by number of operations** — ``arith.benchmark("test", per_ops)`` solved by the
  controller's :class:`~reasonkit.strategies.CoT` strategy (graded by ``reasonkit.answers``), and
  the Direct strategy beside it for reference. Target: ≥ 90% at 1–2 operations, clearly lower at 6–8.
* **Refine repair rate** — ``arith.corrupted_states("test", n)`` (the last step carries one injected
  mistake: arith, copy, order or malformed); a repair is a refine output that is a correct step from
  the expression before the last step (``check_step(...).ok`` and it computes something). Target ≥ 50%.
* **Self-evaluation A3 agreement** — the same states, each once with its mistake and once with the
  correct last step (so half the truths are "right"); agreement of the parsed A3 score with the
  teacher's. Target ≥ 80%. The other six aspects' agreement is reported too.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reasonkit.backends.options import BackendOptions
from reasonkit.config import parse_config
from reasonkit.rundir import atomic_write_json, atomic_write_text

TARGETS = {"cot_1_2_ops": 0.90, "refine_repair": 0.50, "self_eval_a3": 0.80}


@dataclass
class EvaluateConfig(BackendOptions):
    """Measure a compact-pack model on the arith test split (CoT by operations, refine, self-evaluation)."""

    per_ops: int = field(
        default=50, metadata={"help": "test problems per operation count (1..8) for CoT/Direct"}
    )
    states: int = field(
        default=300, metadata={"help": "corrupted test states for refine and self-evaluation"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the test problems and states"})
    batch_size: int = field(default=64, metadata={"help": "prompts per generate() batch"})
    device: Literal["auto", "cpu", "cuda"] = field(default="cpu", metadata={"help": "where the model runs"})
    out: str | None = field(default=None, metadata={"help": "write the results as JSON here"})
    markdown: str | None = field(default=None, metadata={"help": "write the markdown tables here"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.per_ops < 1 or self.states < 1 or self.batch_size < 1:
            raise ValueError("per_ops, states and batch_size must be >= 1")


def cot_by_ops(backend: Any, per_ops: int, seed: int) -> dict[str, Any]:
    """Accuracy of CoT and Direct per operation count on ``benchmark("test", per_ops, seed)``."""
    from reasonkit.controller import Controller
    from reasonkit.strategies import make_strategy
    from reasonkit.tasks import arith

    problems = arith.benchmark("test", per_ops=per_ops, seed=seed)
    out: dict[str, Any] = {}
    for name in ("cot", "direct"):
        strategy = make_strategy(name)
        result = Controller(backend, strategy, batch_size=len(problems), progress=False).run(problems)
        by_ops: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for problem, trace in zip(problems, result.traces):
            by_ops[problem.meta["n_ops"]][0] += int(bool(trace.correct))
            by_ops[problem.meta["n_ops"]][1] += 1
        out[name] = {
            "by_ops": {str(k): round(c / n, 4) for k, (c, n) in sorted(by_ops.items())},
            "accuracy": round(sum(c for c, _ in by_ops.values()) / len(problems), 4),
            "tokens_out_per_problem": round(result.summary["tokens_out_per_problem"], 1),
        }
    return out


def _generate(backend: Any, prompts: Sequence[Any], call: str) -> list[str]:
    from reasonkit.kit.base import resolve_pack

    params = resolve_pack(None, backend).sampling(call)
    return [c[0].text for c in backend.generate(list(prompts), params)]


def refine_and_self_eval(backend: Any, n: int, seed: int) -> dict[str, Any]:
    """Refine repair rate on single injected mistakes, and self-evaluation agreement with the teacher."""
    from reasonkit.kit.base import resolve_pack
    from reasonkit.tasks import arith
    from reasonkit.tasks.arith.steps import check_step
    from reasonkit.tasks.arith.teacher import current_expression, self_evaluate

    pack = resolve_pack(None, backend)
    cases = arith.corrupted_states("test", n, seed=seed)
    refined = _generate(backend, [pack.refine(s.problem, list(s.steps)) for s, _ in cases], "refine")
    repairs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (state, _), text in zip(cases, refined):
        prev = current_expression(state.problem.question, state.steps[:-1])
        check = check_step(prev, pack.parse_refine(text))
        kind = state.mistakes[0][1]
        repairs[kind][0] += int(check.ok and check.calculation is True)
        repairs[kind][1] += 1
    # each state twice: with its mistake, and with the correct last step
    eval_states = [(s.problem, list(s.steps)) for s, _ in cases]
    eval_states += [(s.problem, [*s.steps[:-1], good]) for s, good in cases]
    outputs = _generate(backend, [pack.self_evaluate(p, steps) for p, steps in eval_states], "self_evaluate")
    agree = [[0, 0] for _ in range(7)]
    a3_split: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # by the state's mistake kind, or "correct"
    a3_truth: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # by the true A3 score (0, 1, 3)
    for i, ((problem, steps), text) in enumerate(zip(eval_states, outputs)):
        truth = self_evaluate(problem.question, steps)
        scores = pack.parse_scores(text)
        for a in range(7):
            agree[a][0] += int(scores[a] == truth[a])
            agree[a][1] += 1
        group = cases[i][0].mistakes[0][1] if i < len(cases) else "correct"
        a3_split[group][0] += int(scores[2] == truth[2])
        a3_split[group][1] += 1
        a3_truth[str(truth[2])][0] += int(scores[2] == truth[2])
        a3_truth[str(truth[2])][1] += 1
    from reasonkit.packs import ASPECTS

    total_repairs = sum(k for k, _ in repairs.values())
    return {
        "refine": {
            "repair_rate": round(total_repairs / len(cases), 4),
            "by_kind": {k: round(c / m, 4) for k, (c, m) in sorted(repairs.items())},
            "n": len(cases),
        },
        "self_eval": {
            "agreement": {name: round(c / m, 4) for name, (c, m) in zip(ASPECTS, agree)},
            "a3_by_state": {k: round(c / max(1, m), 4) for k, (c, m) in sorted(a3_split.items())},
            # recall per true score: a model answering "3" for every well-formed step scores 0 on "1"
            "a3_by_truth": {k: round(c / max(1, m), 4) for k, (c, m) in sorted(a3_truth.items())},
            "n": len(eval_states),
        },
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables (what README/BENCHMARKS.md show)."""
    cot, direct = results["cot"], results["direct"]
    ops = list(cot["by_ops"])
    lines = [
        "| strategy | " + " | ".join(f"{k} ops" for k in ops) + " | all |",
        "|---|" + "---|" * (len(ops) + 1),
    ]
    for name, row in (("CoT", cot), ("Direct", direct)):
        cells = " | ".join(f"{100 * row['by_ops'][k]:.0f}%" for k in ops)
        lines.append(f"| {name} | {cells} | {100 * row['accuracy']:.1f}% |")
    refine, self_eval = results["refine"], results["self_eval"]
    kinds = ", ".join(f"{k} {100 * v:.0f}%" for k, v in refine["by_kind"].items())
    aspects = ", ".join(f"{k} {100 * v:.0f}%" for k, v in self_eval["agreement"].items())
    a3 = ", ".join(f"{k} {100 * v:.0f}%" for k, v in self_eval["a3_by_state"].items())
    recall = ", ".join(f"A3={k}: {100 * v:.0f}%" for k, v in self_eval["a3_by_truth"].items())
    lines += [
        "",
        f"Refine repairs {100 * refine['repair_rate']:.1f}% of {refine['n']} injected single mistakes ({kinds}).",
        f"Self-evaluation agreement with the teacher on {self_eval['n']} states: {aspects}. "
        f"A3 agreement by the last step's mistake: {a3}; by the true score: {recall}.",
    ]
    return "\n".join(lines) + "\n"


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    by_ops = results["cot"]["by_ops"]
    cot_low = (by_ops.get("1", 0.0) + by_ops.get("2", 0.0)) / 2
    cot_high = sum(by_ops.get(k, 0.0) for k in ("6", "7", "8")) / 3
    measured = {
        "cot_1_2_ops": cot_low,
        "refine_repair": results["refine"]["repair_rate"],
        "self_eval_a3": results["self_eval"]["agreement"]["A3"],
    }
    met = {k: measured[k] >= TARGETS[k] for k in TARGETS}
    met["cot_lower_at_6_8"] = cot_high < cot_low
    return {"measured": {**measured, "cot_6_8_ops": round(cot_high, 4)}, "targets": TARGETS, "met": met}


def open_backend(model: str, device: str, batch_size: int, threads: int | None = None) -> Any:
    """``load_backend(model)`` on ``device``; without accelerate (which device placement needs) the
    model loads on the CPU and is moved over."""
    import importlib.util

    from reasonkit.backends.loading import load_backend

    if device == "cpu" or importlib.util.find_spec("accelerate") is not None:
        return load_backend(model, device=device, batch_size=batch_size, threads=threads)
    backend = load_backend(model, device="cpu", batch_size=batch_size, threads=threads)
    backend.model.to(device)  # type: ignore[attr-defined]
    return backend


def evaluate_model(cfg: EvaluateConfig) -> dict[str, Any]:
    import torch

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    backend = open_backend(cfg.model, device, cfg.batch_size, cfg.threads)
    try:
        results: dict[str, Any] = {
            "model": cfg.model,
            "split": "test",
            "per_ops": cfg.per_ops,
            "seed": cfg.seed,
        }
        results.update(cot_by_ops(backend, cfg.per_ops, cfg.seed))
        results.update(refine_and_self_eval(backend, cfg.states, cfg.seed))
    finally:
        getattr(
            backend, "close", lambda: None
        )()  # every backend has close(); the protocol does not declare it
    results["summary"] = check_targets(results)
    results["seconds"] = round(time.perf_counter() - start, 1)
    return results


def evaluate_command(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(EvaluateConfig, argv, prog="reasonkit eval lm")
    results = evaluate_model(cfg)
    table = markdown(results)
    if cfg.out:
        atomic_write_json(Path(cfg.out), results)
    if cfg.markdown:
        atomic_write_text(Path(cfg.markdown), table)
    print(table)
    print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    from reasonkit.models.builtin.entry import run_main

    raise SystemExit(run_main(evaluate_command))
