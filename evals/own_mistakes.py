"""The built-in model's blocks measured on its *own* steps, and training targets built from them.

Injected mistakes (``arith.corrupted_states``) are not the mistakes a model makes: the first built-in
model (v1) repairs 81 % of injected ones and almost none of its own slips. This module rolls the
model out greedily, one ``reason_step`` call at a time, labels every step it writes with the arith
teacher's step checker (exact: ``check_step(prev, step).ok``), and then

* **measures** each block on those steps (:func:`measure`): self-evaluation flags a wrong step (any of
  A1-A3 scored 1) and false-alarms on a right one; refine repairs a wrong step (its output is a right
  step from the same expression that computes something) and breaks a right one; summarize copies a
  single subtask's result faithfully (exact match with the teacher's summary);
* **builds targets** (:func:`own_pairs`): the teacher's self-evaluation and refine targets for states
  that end in the model's own steps (wrong and right ones, in a set ratio), as (prompt, target) pairs
  that ``reasonkit train-lm --extra-data`` mixes into its stream.

    reasonkit eval own-mistakes --model builtin --problems 400 --out runs/own-v1.json
    reasonkit eval own-mistakes --model builtin --split train --problems 4000 --pairs runs/own-pairs.jsonl

Everything is greedy and seeded, so a rerun gives the same steps, labels and pairs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.backends.options import BackendOptions
from reasonkit.config import parse_config
from reasonkit.rundir import atomic_write_json, atomic_write_text
from reasonkit.types import Problem

#: the issue-15 targets, each on the model's own steps
TARGETS = {
    "self_eval_flags_wrong": (">=", 0.60),
    "self_eval_false_alarms": ("<=", 0.10),
    "refine_repairs_wrong": (">=", 0.50),
    "refine_breaks_right": ("<=", 0.02),
    "summary_exact": (">=", 0.95),
}


@dataclass(frozen=True)
class OwnStep:
    """A state (problem + the model's steps so far) and the next step the model wrote, labelled."""

    problem: Problem
    before: tuple[str, ...]
    step: str
    ok: bool

    @property
    def steps(self) -> list[str]:
        return [*self.before, self.step]


def _generate(
    backend: Any, prompts: Sequence[Any], call: str, batch: int, temperature: float = 0.0, seed: int = 0
) -> list[str]:
    """Greedy completions, or seeded samples at ``temperature`` (one seed per batch, so reruns agree)."""
    from dataclasses import replace

    from reasonkit.kit.base import resolve_pack

    params = resolve_pack(None, backend).sampling(call)
    out: list[str] = []
    for start in range(0, len(prompts), batch):
        if temperature > 0:
            params = replace(params, temperature=temperature, seed=seed * 1_000_003 + start)
        out += [c[0].text for c in backend.generate(list(prompts[start : start + batch]), params)]
    return out


def rollouts(
    backend: Any,
    problems: Sequence[Problem],
    batch: int = 64,
    max_steps: int = 12,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[OwnStep]:
    """``reason_step`` rollouts, greedy (or sampled at ``temperature``); every step labelled. A rollout
    stops at a literal, at a step that cannot be read (labelled wrong; nothing follows from it) or
    after ``max_steps``. A sampled rollout continues past a wrong but readable step, from the state
    the model wrote, as the model itself would."""
    from reasonkit.kit.base import resolve_pack
    from reasonkit.tasks.arith.expr import is_literal, parse
    from reasonkit.tasks.arith.steps import check_step, parse_step

    pack = resolve_pack(None, backend)  # the model's own pack (compact, or compact2 from v4 on)
    states: dict[int, tuple[list[str], Any]] = {i: ([], parse(p.question)) for i, p in enumerate(problems)}
    labelled: list[OwnStep] = []
    for depth in range(max_steps):
        live = [i for i, (_, node) in states.items() if not is_literal(node)]
        if not live:
            break
        prompts = [pack.reason_step(problems[i], states[i][0]) for i in live]
        texts = _generate(backend, prompts, "reason_step", batch, temperature, seed * 100 + depth)
        for i, text in zip(live, texts):
            steps, node = states[i]
            step = text.strip()
            check = check_step(node, step)
            labelled.append(OwnStep(problems[i], tuple(steps), step, bool(check.ok)))
            rewrite = parse_step(step).rewrite
            if rewrite is None:
                del states[i]  # unreadable: nothing follows
                continue
            states[i] = ([*steps, step], rewrite)
    return labelled


def _flags(scores: Sequence[int]) -> bool:
    """Self-evaluation says the last step is wrong: A1, A2 or A3 scored 1 (false)."""
    return any(s == 1 for s in scores[:3])


def judge(
    backend: Any, own: Sequence[OwnStep], batch: int = 64, refine_temperature: float = 0.0, seed: int = 0
) -> list[dict[str, Any]]:
    """Self-evaluation and refine on each labelled step: one record per step with ``flagged`` (the
    model scored the step wrong) and ``fixed_ok`` (refine's output: a repair of a wrong step, or a
    right step left right). Refine is greedy, or sampled at ``refine_temperature`` with ``seed``."""
    from reasonkit.kit.base import resolve_pack
    from reasonkit.tasks.arith.steps import check_step
    from reasonkit.tasks.arith.teacher import current_expression

    pack = resolve_pack(None, backend)
    scores = _generate(backend, [pack.self_evaluate(s.problem, s.steps) for s in own], "self_evaluate", batch)
    refine = [pack.refine(s.problem, s.steps) for s in own]
    refined = _generate(backend, refine, "refine", batch, refine_temperature, seed)
    records = []
    for s, text, out in zip(own, scores, refined):
        new = pack.parse_refine(out)  # the step, without the pack's scratch work
        check = check_step(current_expression(s.problem.question, list(s.before)), new)
        good = bool(check.ok) if s.ok else bool(check.ok and check.calculation is True)
        records.append({
            "question": s.problem.question, "before": list(s.before), "step": s.step, "ok": s.ok,
            "self_evaluation": text.strip(), "flagged": _flags(pack.parse_scores(text)),
            "refined": new, "refine_output": out.strip(), "fixed_ok": good,
        })  # fmt: skip
    return records


def tally(records: Sequence[dict[str, Any]]) -> tuple[dict[str, int], dict[str, float | None]]:
    """Counts and rates of :func:`judge`'s records.

    Besides the four block figures, the *gated* ones: what a navigator that calls refine only when
    self-evaluation flags the step gets — wrong steps both flagged and repaired, right steps both
    flagged (false alarm) and broken. A navigator built from these two blocks can repair no more own
    slips than ``gated_repairs_wrong`` of them."""
    names = "wrong right flagged_wrong flagged_right repaired broken flagged_repaired flagged_broken"
    counts = dict.fromkeys(names.split(), 0)
    for r in records:
        group = "right" if r["ok"] else "wrong"
        counts[group] += 1
        counts[f"flagged_{group}"] += int(r["flagged"])
        # refine broke a right step / repaired a wrong one
        changed, hit = ("broken", not r["fixed_ok"]) if r["ok"] else ("repaired", bool(r["fixed_ok"]))
        counts[changed] += int(hit)
        counts[f"flagged_{changed}"] += int(hit and r["flagged"])
    rate = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    figures = {
        "self_eval_flags_wrong": rate(counts["flagged_wrong"], counts["wrong"]),
        "self_eval_false_alarms": rate(counts["flagged_right"], counts["right"]),
        "refine_repairs_wrong": rate(counts["repaired"], counts["wrong"]),
        "refine_breaks_right": rate(counts["broken"], counts["right"]),
        "gated_repairs_wrong": rate(counts["flagged_repaired"], counts["wrong"]),
        "gated_breaks_right": rate(counts["flagged_broken"], counts["right"]),
    }
    return counts, figures


def measure(
    backend: Any, problems: Sequence[Problem], batch: int = 64, steps_out: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Self-evaluation, refine and single-subtask summaries on the model's own steps of ``problems``
    (every judged step is appended to ``steps_out`` when given)."""
    records = judge(backend, rollouts(backend, problems, batch), batch)
    if steps_out is not None:
        steps_out.extend(records)
    counts, figures = tally(records)
    summary = single_subtask_summaries(backend, problems, batch)
    figures["summary_exact"] = summary["exact"]
    return {"figures": figures, "counts": {**counts, "summaries": summary["n"]}, "problems": len(problems)}


def single_subtask_summaries(backend: Any, problems: Sequence[Problem], batch: int = 64) -> dict[str, Any]:
    """Summarize with exactly one subtask and its true result: is the model's step the teacher's?"""
    from reasonkit.kit.base import resolve_pack
    from reasonkit.tasks.arith import teacher
    from reasonkit.tasks.arith.training import summary_target

    pack = resolve_pack(None, backend)
    cases = [
        summary_target(pack, p, [], subtasks[:1])
        for p in problems
        if (subtasks := teacher.decompose(p.question, []))
    ]
    outputs = _generate(backend, [c[0] for c in cases], "summarize", batch)
    exact = sum(out.strip() == want.strip() for (_, want), out in zip(cases, outputs))
    return {"exact": round(exact / len(cases), 4) if cases else None, "n": len(cases)}


def own_pairs(
    own: Sequence[OwnStep], wrong_share: float = 0.5, seed: int = 0, pack: Any = "compact"
) -> list[dict[str, str]]:
    """Teacher targets for self-evaluation and refine on states ending in the model's own steps.

    Right steps far outnumber wrong ones; right ones are subsampled so wrong ones make ``wrong_share``
    of the states (refine on a right step must reproduce it; self-evaluation must score it right)."""
    from reasonkit.packs import load_pack
    from reasonkit.tasks.arith.training import ArithState, _target

    pack = load_pack(pack)  # a name, a YAML path or a PromptPack
    wrong = [s for s in own if not s.ok]
    right = [s for s in own if s.ok]
    rng = random.Random(f"reasonkit.own-pairs:{seed}")
    keep = round(len(wrong) * (1 - wrong_share) / wrong_share) if wrong_share < 1 else 0
    chosen = wrong + (rng.sample(right, keep) if keep < len(right) else right)
    pairs = []
    for s in chosen:
        state = ArithState(s.problem, tuple(s.steps))
        for task in ("self_evaluate", "refine"):
            prompt, target = _target(task, state, pack, rng)
            pairs.append({"task": task, "prompt": str(prompt), "target": target, "own_step_ok": str(s.ok)})
    rng.shuffle(pairs)
    return pairs


def summary_pairs(problems: Sequence[Problem], seed: int = 0, pack: Any = "compact") -> list[dict[str, str]]:
    """Teacher targets for summarize given a *prefix* of the subtasks (one subtask most often).

    The original stream only ever summarises every subtask of a decomposition, so a summary of one
    subtask (what the decompose block asks when the model lists one, and what
    :func:`single_subtask_summaries` measures) is off its distribution. One pair per problem, all
    results true; states are the problem or a teacher prefix of its steps."""
    from reasonkit.packs import load_pack
    from reasonkit.tasks.arith import teacher
    from reasonkit.tasks.arith.expr import parse
    from reasonkit.tasks.arith.steps import gold_steps
    from reasonkit.tasks.arith.training import summary_target

    pack = load_pack(pack)  # a name, a YAML path or a PromptPack
    rng = random.Random(f"reasonkit.summary-pairs:{seed}")
    pairs = []
    for p in problems:
        gold = gold_steps(parse(p.question))
        steps = gold[: rng.randrange(len(gold))] if gold and rng.random() < 0.3 else []
        subtasks = teacher.decompose(p.question, steps)
        if not subtasks:
            continue
        k = 1 if rng.random() < 0.6 else rng.randint(1, len(subtasks))
        prompt, target = summary_target(pack, p, steps, subtasks[:k])
        pairs.append({"task": "summarize", "prompt": str(prompt), "target": target, "own_step_ok": "n/a"})
    return pairs


def refine_pairs(problems: Sequence[Problem], seed: int = 0, pack: Any = "compact") -> list[dict[str, str]]:
    """Teacher refine targets on the stream's refine states (a prefix of a solution, half of them
    with one injected mistake), one per problem: more practice at a pack's refine format than the
    stream's 10 % share gives (compact3's scratch work is new to a model trained on compact2)."""
    from reasonkit.packs import load_pack
    from reasonkit.tasks.arith.expr import parse
    from reasonkit.tasks.arith.training import _target, sample_state

    pack = load_pack(pack)  # a name, a YAML path or a PromptPack
    rng = random.Random(f"reasonkit.refine-pairs:{seed}")
    pairs = []
    for p in problems:
        prompt, target = _target("refine", sample_state(parse(p.question), "refine", rng), pack, rng)
        pairs.append({"task": "refine", "prompt": str(prompt), "target": target, "own_step_ok": "n/a"})
    return pairs


@dataclass
class OwnMistakesConfig(BackendOptions):
    """Measure self-evaluation, refine and summarize on the model's own steps (and build targets)."""

    split: str = field(default="test", metadata={"help": "arith split whose problems are rolled out"})
    problems: int = field(default=400, metadata={"help": "problems (spread evenly over 1-8 operations)"})
    seed: int = field(default=0, metadata={"help": "seed of the problems and of the pairs' sampling"})
    batch_size: int = field(default=64, metadata={"help": "prompts per generate() batch"})
    out: str | None = field(default=None, metadata={"help": "write the figures as JSON here"})
    pairs: str | None = field(
        default=None, metadata={"help": "write training pairs (JSONL) built from the model's own steps here"}
    )
    wrong_share: float = field(default=0.5, metadata={"help": "share of states ending in a wrong step"})
    steps: str | None = field(
        default=None,
        metadata={
            "help": "write every judged own step (JSONL: the step, its label, self-evaluation, refine)"
        },
    )
    samples: int = field(
        default=0,
        metadata={
            "help": "with --pairs: sampled rollouts per problem besides the greedy one (more own slips)"
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "temperature of the sampled rollouts"})
    pairs_pack: str | None = field(
        default=None,
        metadata={
            "help": "with --pairs: the prompt pack the pairs are written in (default: the model's own); "
            "the pack the next model trains on, e.g. compact2 when a compact model's steps train v4"
        },
    )
    summaries: int = field(
        default=0, metadata={"help": "with --pairs: add summarize targets on this many more problems"}
    )
    refines: int = field(
        default=0,
        metadata={
            "help": "with --pairs: add teacher refine targets on this many more problems (a new refine format)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.problems < 1 or self.batch_size < 1 or not 0 < self.wrong_share <= 1:
            raise ValueError("--problems and --batch-size must be >= 1 and --wrong-share in (0, 1]")
        if self.samples < 0 or self.summaries < 0 or self.refines < 0 or not 0 < self.temperature <= 2:
            raise ValueError("--samples, --summaries and --refines must be >= 0 and --temperature in (0, 2]")


def problems_of(split: str, n: int, seed: int) -> list[Problem]:
    from reasonkit.tasks import arith

    per_ops = -(-n // 8)
    drawn = arith.benchmark(split, per_ops=per_ops, seed=seed)
    by_rank = sorted(range(len(drawn)), key=lambda i: (i % per_ops, i // per_ops))  # 1, 2, ..., 8, 1, ...
    return [drawn[i] for i in by_rank][:n]


def own_mistakes_command(argv: Sequence[str] | None = None) -> int:
    from reasonkit.kit.base import resolve_pack
    from reasonkit.packs import load_pack

    cfg = parse_config(OwnMistakesConfig, argv, prog="reasonkit eval own-mistakes")
    # loaded first, so an unknown pack fails (PackError) before the model loads
    pairs_pack = load_pack(cfg.pairs_pack) if cfg.pairs_pack else None
    backend = cfg.load(cfg.model)
    problems = problems_of(cfg.split, cfg.problems, cfg.seed)
    if cfg.pairs:
        from reasonkit.progress import progress_bar

        own: list[OwnStep] = []
        with progress_bar(total=1 + cfg.samples, desc="rollouts (greedy, then sampled)", unit="pass") as bar:
            for k in range(1 + cfg.samples):  # pass 0 greedy, then seeded samples at --temperature
                temperature, seed = (0.0, 0) if k == 0 else (cfg.temperature, cfg.seed * 1000 + k)
                own += rollouts(backend, problems, cfg.batch_size, temperature=temperature, seed=seed)
                bar.update(1)
        pack = resolve_pack(pairs_pack, backend)  # default: the model's own pack
        pairs = own_pairs(own, cfg.wrong_share, cfg.seed, pack)
        # drawn with other seeds: teacher-only targets, independent of the rolled-out problems
        if cfg.summaries:
            pairs += summary_pairs(problems_of(cfg.split, cfg.summaries, cfg.seed + 1), cfg.seed, pack)
        if cfg.refines:
            pairs += refine_pairs(problems_of(cfg.split, cfg.refines, cfg.seed + 2), cfg.seed, pack)
        if cfg.summaries or cfg.refines:
            random.Random(f"reasonkit.own-pairs-mix:{cfg.seed}").shuffle(pairs)
        atomic_write_text(Path(cfg.pairs), "".join(json.dumps(p) + "\n" for p in pairs))
        wrong = sum(not s.ok for s in own)
        print(
            f"{len(own)} own steps ({wrong} wrong) on {len(problems)} {cfg.split} problems -> {len(pairs)} pairs in {cfg.pairs}"
        )
        return 0
    records: list[dict[str, Any]] = []
    results = measure(backend, problems, cfg.batch_size, records)
    if cfg.steps:
        atomic_write_text(Path(cfg.steps), "".join(json.dumps(r) + "\n" for r in records))
    results.update({"model": cfg.model, "split": cfg.split, "seed": cfg.seed})
    if cfg.out:
        atomic_write_json(Path(cfg.out), results)
    for name, value in results["figures"].items():
        sign, target = TARGETS.get(name, (None, None))
        note = f"target {sign} {target}" if sign else "no target: refine only on a flag"
        print(f"{name:<24} {value}   ({note})")
    print(json.dumps(results["counts"]))
    return 0
