"""Reasoning states and (prompt, target) pairs for training the built-in model on every block task.

A *state* is a problem plus the steps written so far. :func:`sample_state` walks a correct solution
along a random mix of routes (canonical steps, debate moves, decompose summaries), cuts it where the
task needs (terminate sees mostly finished states, reason mostly unfinished ones), and with a
task-dependent rate injects one mistake (:mod:`reasonkit.tasks.arith.corrupt`) into the last step or
an earlier one; steps after an earlier mistake continue faithfully from the wrong expression.

:func:`training_examples` renders each state with a prompt pack and pairs it with the teacher's
target (:mod:`reasonkit.tasks.arith.teacher`) for a mixture of tasks, one per pack call:

    >>> pairs = list(training_examples("train", n=2, seed=0))
    >>> all(target.endswith("\\n") for _, target in pairs)
    True

Everything is deterministic in (split, seed, index): example ``i`` depends on nothing else, so a
trainer resumes with ``start=i``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from reasonkit.packs.blocks import CALLS, OPTIONAL_CALLS
from reasonkit.packs.pack import PromptPack, load_pack
from reasonkit.tasks.arith import teacher
from reasonkit.tasks.arith.corrupt import CORRUPTION_KINDS, corrupt_step, wrong_value
from reasonkit.tasks.arith.expr import Node, Num, parse, render, value_of
from reasonkit.tasks.arith.generate import SPLITS, ArithConfig, sample_expression, split_of
from reasonkit.tasks.arith.steps import canonical_step, expressions, gold_steps, parse_step, ready_ops
from reasonkit.types import Problem, Prompt

#: The training tasks: every pack call but the optional ones. Task "terminate" trains the pack's
#: ``answer`` call (answer the state in one jump; the compact terminate block itself continues the
#: chain of thought, which the "cot" task trains).
TASKS: tuple[str, ...] = tuple(c for c in CALLS if c not in OPTIONAL_CALLS)
#: Share of each task in a training mixture (normalised; any subset of TASKS may be given).
DEFAULT_MIXTURE: dict[str, float] = {
    "direct": 0.05,
    "cot": 0.20,
    "reason_step": 0.15,
    "decompose": 0.05,
    "solve_subtask": 0.08,
    "summarize": 0.05,
    "debate_plans": 0.05,
    "debate_compare": 0.05,
    "debate_follow": 0.07,
    "refine": 0.10,
    "terminate": 0.05,
    "final_check": 0.04,
    "self_evaluate": 0.06,
}
#: Probability that a task's state carries one injected mistake.
CORRUPT_RATE: dict[str, float] = {"refine": 0.5, "self_evaluate": 0.5, "final_check": 0.2, "terminate": 0.2}
DEFAULT_CORRUPT_RATE = 0.15
#: Relative frequency of each mistake kind; "malformed" is only ever put in the last step.
KIND_WEIGHTS: dict[str, float] = {"arith": 0.4, "copy": 0.3, "order": 0.2, "malformed": 0.1}
LAST_STEP_SHARE = 0.75  # of injected mistakes, the share placed in the last step
#: How a solution path picks its next step: canonical, a debate move, any ready op, a decompose summary.
ROUTE_WEIGHTS: tuple[float, float, float, float] = (0.55, 0.15, 0.10, 0.20)


@dataclass(frozen=True)
class ArithState:
    """A problem, the steps so far (compact step strings), and the mistakes injected into them."""

    problem: Problem
    steps: tuple[str, ...]
    mistakes: tuple[tuple[int, str], ...] = ()  # (step index, kind)


def _problem(node: Node) -> Problem:
    text = render(node)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Problem(id=f"arith-{digest}", question=text, answer=str(value_of(node)), kind="arith")


def _route_step(node: Node, rng: random.Random) -> str:
    """One correct step from ``node`` along a randomly chosen route."""
    route = rng.choices(range(4), weights=ROUTE_WEIGHTS)[0]
    text = render(node)
    if route == 1:
        plans = teacher.debate_plans(text, [])
        return teacher.debate_follow(text, [], plans[teacher.debate_choice(text, [], plans)])
    if route == 2:
        ready = ready_ops(node)
        return teacher.debate_follow(text, [], render(ready[rng.randrange(len(ready))][1]))
    if route == 3:
        subtasks = teacher.decompose(text, [])
        return teacher.summarize(text, [], subtasks, [teacher.solve_subtask(s)[1] for s in subtasks])
    return canonical_step(node)


def solution_path(node: Node, rng: random.Random) -> list[str]:
    """A correct solution of ``node`` mixing routes, ending when one integer is left."""
    steps = []
    while not isinstance(node, Num):
        step = _route_step(node, rng)
        steps.append(step)
        rewrite = parse_step(step).rewrite
        assert rewrite is not None and value_of(rewrite) == value_of(node)  # routes preserve the value
        node = rewrite
    return steps


def _cut(task: str, length: int, rng: random.Random) -> int:
    if task in ("terminate", "final_check") and rng.random() < (0.6 if task == "terminate" else 0.5):
        return length
    if task == "self_evaluate":
        return rng.randint(0, length)
    if task == "refine":
        return 0 if rng.random() < 0.05 else rng.randint(1, length)
    if rng.random() < 0.05:  # a few finished states teach the blocks what to do when nothing is left
        return length
    return rng.randint(0, length - 1)


def _continue(question: str, steps: list[str], count: int) -> list[str]:
    """``steps`` followed by up to ``count`` canonical steps from wherever they lead."""
    out = list(steps)
    for _ in range(count):
        node = expressions(question, out)[-1]
        if isinstance(node, Num):
            break
        out.append(canonical_step(node))
    return out


def inject_mistake(
    question: str, steps: Sequence[str], position: int, kind: str, rng: random.Random
) -> list[str] | None:
    """``steps`` with step ``position`` corrupted by ``kind`` (later steps redone from the mistake)."""
    prev = expressions(question, steps[:position])[-1]
    bad = corrupt_step(prev, steps[position], kind, rng)
    if bad is None:
        return None
    return _continue(question, [*steps[:position], bad], len(steps) - position - 1)


def sample_state(
    problem_node: Node, task: str, rng: random.Random, corrupt_rate: float | None = None
) -> ArithState:
    """A state of ``problem_node`` suited to ``task`` (see the module docstring)."""
    question = render(problem_node)
    path = solution_path(problem_node, rng)
    steps = path[: _cut(task, len(path), rng)]
    rate = CORRUPT_RATE.get(task, DEFAULT_CORRUPT_RATE) if corrupt_rate is None else corrupt_rate
    mistakes: tuple[tuple[int, str], ...] = ()
    if steps and rng.random() < rate:
        last = len(steps) == 1 or rng.random() < LAST_STEP_SHARE
        position = len(steps) - 1 if last else rng.randrange(len(steps) - 1)
        kinds = [k for k in CORRUPTION_KINDS if last or k != "malformed"]
        kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
        corrupted = inject_mistake(question, steps, position, kind, rng)
        if corrupted is None:  # e.g. no operation for precedence to block: make it a wrong value
            kind = "arith"
            corrupted = inject_mistake(question, steps, position, kind, rng)
        if corrupted is not None:
            steps, mistakes = corrupted, ((position, kind),)
    return ArithState(_problem(problem_node), tuple(steps), mistakes)


# ------------------------------------------------------------------ rendering with a pack


def _calcs(step: str) -> list[tuple[str, str]]:
    """A well-formed compact step's calculations as (lhs, value) texts."""
    calcs_part = step.partition("|")[0]
    return [(lhs, value) for lhs, _, value in (c.partition("=") for c in calcs_part.split(",") if c)]


def restyle(pack: PromptPack, step: str) -> str:
    """A compact step written in ``pack``'s step style (malformed steps stay as they are)."""
    if not parse_step(step).well_formed:
        return step
    return pack.format_step(_calcs(step), step.partition("|")[2])


def refine_target(pack: PromptPack, step: str) -> str:
    """Refine's target for the teacher's corrected ``step``: the step in ``pack``'s style, with the
    pack's scratch work for its calculations before it when the pack asks for it (compact3)."""
    return pack.format_refine(restyle(pack, step), _calcs(step) if parse_step(step).well_formed else [])


def _target(task: str, state: ArithState, pack: PromptPack, rng: random.Random) -> tuple[Prompt, str]:
    q, steps, p = state.problem.question, list(state.steps), state.problem
    shown = [restyle(pack, s) for s in steps]
    if task in ("direct", "terminate"):
        prompt = pack.direct(p) if task == "direct" else pack.answer(p, shown)
        return prompt, pack.format_answer(teacher.answer(q, [] if task == "direct" else steps))
    if task == "cot":
        gold = [restyle(pack, s) for s in gold_steps(parse(q))]
        return pack.cot(p), pack.format_cot(gold, p.answer)
    if task == "reason_step":
        return pack.reason_step(p, shown), restyle(pack, teacher.reason(q, steps))
    if task == "refine":
        return pack.refine(p, shown), refine_target(pack, teacher.refine(q, steps))
    if task == "final_check":
        return pack.final_check(p, shown), pack.format_yes_no(teacher.final_check(q, steps))
    if task == "self_evaluate":
        return pack.self_evaluate(p, shown), pack.format_scores(teacher.self_evaluate(q, steps))
    if task.startswith("debate"):
        return _debate(task, state, pack, rng, shown)
    return _decompose(task, state, pack, rng, shown)


def _solution_text(pack: PromptPack, subtask: str, value: int | None = None) -> str:
    gold, true_value = teacher.solve_subtask(subtask)
    return pack.format_cot([restyle(pack, s) for s in gold], true_value if value is None else value)


def _decompose(
    task: str, state: ArithState, pack: PromptPack, rng: random.Random, shown: list[str]
) -> tuple[Prompt, str]:
    q, steps, p = state.problem.question, list(state.steps), state.problem
    subtasks = teacher.decompose(q, steps)
    if task == "decompose":
        return pack.decompose(p, shown), pack.format_subtasks(subtasks)
    if task == "solve_subtask":
        if not subtasks:  # nothing left to split: practise on the whole problem instead
            subtasks = [q]
        i = rng.randrange(len(subtasks))
        results = [_solution_text(pack, s) for s in subtasks[:i]]
        return pack.solve_subtask(p, shown, subtasks, results, i), _solution_text(pack, subtasks[i])
    values: list[int | None] = [teacher.solve_subtask(s)[1] for s in subtasks]
    if subtasks and rng.random() < 0.15:  # a wrong subtask result is summarised as given
        j = rng.randrange(len(subtasks))
        values[j] = wrong_value(teacher.solve_subtask(subtasks[j])[1], rng)
    return summary_target(pack, p, steps, subtasks, values)


def summary_target(
    pack: PromptPack,
    problem: Problem,
    steps: Sequence[str],
    subtasks: Sequence[str],
    values: Sequence[int | None] | None = None,
) -> tuple[Prompt, str]:
    """The summarize call's (prompt, teacher target) for ``subtasks`` solved to ``values`` (their true
    values when None) in the state ``steps``: the one place that builds a summarize example."""
    if values is None:
        values = [teacher.solve_subtask(s)[1] for s in subtasks]
    results = [_solution_text(pack, s, v) for s, v in zip(subtasks, values)]
    shown = [restyle(pack, s) for s in steps]
    target = restyle(pack, teacher.summarize(problem.question, list(steps), list(subtasks), list(values)))
    return pack.summarize(problem, shown, list(subtasks), results), target


def _debate(
    task: str, state: ArithState, pack: PromptPack, rng: random.Random, shown: list[str]
) -> tuple[Prompt, str]:
    q, steps, p = state.problem.question, list(state.steps), state.problem
    plans = teacher.debate_plans(q, steps)
    if task == "debate_plans":
        return pack.debate_plans(p, shown), pack.format_plans(plans)
    if plans and rng.random() < 0.5:  # other orders, so the choice is learned from content, not position
        rng.shuffle(plans)
    choice = teacher.debate_choice(q, steps, plans)
    if task == "debate_compare":
        return pack.debate_compare(p, shown, plans), pack.format_choice(choice)
    if plans and rng.random() < 0.4:  # follow any plan: valid ones are carried out, invalid ones refused
        choice = rng.randrange(len(plans))
    plan = plans[choice] if plans else ""
    return pack.debate_follow(p, shown, plans, choice), restyle(pack, teacher.debate_follow(q, steps, plan))


def _check_mixture(mixture: Mapping[str, float]) -> tuple[list[str], list[float]]:
    unknown = sorted(set(mixture) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown} in the mixture; tasks are {TASKS}")
    if any(w < 0 for w in mixture.values()) or sum(mixture.values()) <= 0:
        raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {dict(mixture)}")
    return list(mixture), list(mixture.values())


def _draw(rng: random.Random, split: str, cfg: ArithConfig) -> Node:
    """A random problem of ``split``: rejection keeps the split's hash bucket (train accepts 80%)."""
    for _ in range(10_000):
        node = sample_expression(rng, rng.randint(cfg.min_ops, cfg.max_ops), cfg)
        if split_of(render(node)) == split:
            return node
    raise ValueError(f"no {split} problem found in 10000 draws: the config's problem space is too small")


def example(
    task: str, split: str, seed: int, index: int, pack: PromptPack, config: ArithConfig | None = None
) -> tuple[Prompt, str]:
    """Training pair ``index`` of ``task``: (prompt, target + the pack's end marker)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks are {TASKS}")
    rng = random.Random(f"reasonkit.arith.train:{split}:{seed}:{index}")
    cfg = config or ArithConfig()
    node = _draw(rng, split, cfg)
    state = sample_state(node, task, rng)
    prompt, target = _target(task, state, pack, rng)
    return prompt, target + pack.end


def training_examples(
    split: str = "train",
    n: int = 1000,
    seed: int = 0,
    pack: str | PromptPack = "compact",
    mixture: Mapping[str, float] | None = None,
    config: ArithConfig | None = None,
    start: int = 0,
) -> Iterator[tuple[Prompt, str]]:
    """``n`` (prompt, target) pairs over a mixture of block tasks (default :data:`DEFAULT_MIXTURE`).

    Prompts are strings for text packs (compact) and chat messages for chat packs (natural); each
    target ends with the pack's stop marker (``"\\n"`` for compact). Pair ``i`` is the same whatever
    ``start`` and ``n`` are, so ``start`` resumes a stream.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    the_pack = pack if isinstance(pack, PromptPack) else load_pack(pack)
    tasks, weights = _check_mixture(DEFAULT_MIXTURE if mixture is None else mixture)
    for index in range(start, start + n):
        task = random.Random(f"reasonkit.arith.task:{seed}:{index}").choices(tasks, weights=weights)[0]
        yield example(task, split, seed, index, the_pack, config)


def corrupted_states(
    split: str,
    n: int,
    seed: int = 0,
    kinds: Sequence[str] = CORRUPTION_KINDS,
    config: ArithConfig | None = None,
) -> list[tuple[ArithState, str]]:
    """``n`` states whose *last* step carries one injected mistake, each with its correct last step.

    For measuring refine (does it restore the correct step?) and self-evaluation on known mistakes.
    """
    cfg = config or ArithConfig()
    rng = random.Random(f"reasonkit.arith.corrupted:{split}:{seed}")
    out: list[tuple[ArithState, str]] = []
    while len(out) < n:
        node = _draw(rng, split, cfg)
        q = render(node)
        path = solution_path(node, rng)
        steps = path[: rng.randint(1, len(path))]
        kind = rng.choice(list(kinds))
        bad = inject_mistake(q, steps, len(steps) - 1, kind, rng)
        if bad is not None:
            out.append((ArithState(_problem(node), tuple(bad), ((len(steps) - 1, kind),)), steps[-1]))
    return out
