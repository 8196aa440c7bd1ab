"""Inference-time strategies: how a backend is driven to answer a batch of problems.

A strategy turns problems into :class:`~reasonkit.types.Trace` objects. Every strategy is batched
across problems: one ``backend.generate`` call serves a whole batch, so an HTTP backend fans the
prompts out concurrently and a local model runs them as one padded batch.

Baselines (the comparisons every reasoning paper reports):
  - :class:`Direct`: ask for the answer only.
  - :class:`CoT`: zero-shot chain of thought ("step by step"), one sample.
  - :class:`SelfConsistency`: n chain-of-thought samples, majority vote over their final answers
    (Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning").

Prompts come from a prompt pack (:mod:`reasonkit.packs`): the natural-language pack for
instruction-tuned LLMs, the compact pack for the built-in model. By default a strategy uses the pack
the backend declares (``backend.prompt_pack``).

    >>> from reasonkit.strategies import make_strategy
    >>> make_strategy("sc", n=5).name
    'sc5'
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reasonkit.answers import extract_answer, grade_and_extract
from reasonkit.backends.base import LanguageModel
from reasonkit.types import Completion, Cost, Problem, Prompt, SamplingParams, Step, Trace, prompt_text


@dataclass(frozen=True)
class Budget:
    """Per-problem limits. ``None`` means unlimited. Multi-step strategies stop a problem when a
    limit is reached and record ``meta["budget_exhausted"] = True``; single-call strategies cap
    ``max_new_tokens`` by ``max_tokens``."""

    max_calls: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Budget.{name} must be >= 1 or None, got {value}")

    def exhausted(self, cost: Cost) -> bool:
        return (self.max_calls is not None and cost.calls >= self.max_calls) or (
            self.max_tokens is not None and cost.tokens >= self.max_tokens
        )

    def cap(self, params: SamplingParams) -> SamplingParams:
        if self.max_tokens is None or params.max_new_tokens <= self.max_tokens:
            return params
        return dataclasses.replace(params, max_new_tokens=self.max_tokens)


UNLIMITED = Budget()


@runtime_checkable
class Strategy(Protocol):
    """Solve a batch of problems with a backend; one trace per problem, in order."""

    name: str

    def solve(
        self, problems: Sequence[Problem], backend: LanguageModel, budget: Budget = UNLIMITED
    ) -> list[Trace]: ...


def resolve_pack(pack: Any, backend: LanguageModel) -> Any:
    """The prompt pack to use: an explicit pack object or name, else the backend's declared pack."""
    from reasonkit.packs import PromptPack, load_pack

    if isinstance(pack, PromptPack):
        return pack
    return load_pack(pack or getattr(backend, "prompt_pack", "natural"))


def timed_generate(
    backend: LanguageModel, prompts: Sequence[Prompt], params: SamplingParams
) -> tuple[list[list[Completion]], float]:
    """``backend.generate`` plus the wall time, shared out per prompt."""
    start = time.perf_counter()
    outputs = backend.generate(list(prompts), params)
    elapsed = time.perf_counter() - start
    if len(outputs) != len(prompts):
        raise RuntimeError(
            f"backend {backend.name!r} returned {len(outputs)} results for {len(prompts)} prompts"
        )
    return outputs, elapsed / max(1, len(prompts))


def batch_sampling(pack: Any, call: str, problems: Sequence[Problem]) -> SamplingParams:
    """The pack's sampling hints for ``call`` over a batch: per-kind hints, the longest budget wins
    when a batch mixes kinds (stop strings are shared by a pack's call)."""
    hints = [pack.sampling(call, kind) for kind in dict.fromkeys(p.kind for p in problems)]
    return max(hints, key=lambda h: h.max_new_tokens)


def n_choices(problem: Problem) -> int:
    return len(problem.choices) if problem.choices else 4


def finish_traces(
    problems: Sequence[Problem],
    steps: Sequence[Sequence[Step]],
    final_texts: Sequence[str],
    meta: Sequence[dict[str, Any]] | None = None,
) -> list[Trace]:
    """Extract each problem's answer from its final text, grade the batch at once, build traces."""
    gradable = [i for i, p in enumerate(problems) if p.answer != ""]
    checked = grade_and_extract([(final_texts[i], problems[i].answer, problems[i].kind) for i in gradable])
    graded: dict[int, tuple[bool, str | None]] = dict(zip(gradable, checked))
    traces = []
    for i, problem in enumerate(problems):
        cost = sum((s.cost for s in steps[i]), Cost())
        trace_meta = {
            "kind": problem.kind,
            **(problem.meta.get("trace_meta") or {}),
            **(meta[i] if meta else {}),
        }
        traces.append(
            Trace(
                problem_id=problem.id,
                steps=tuple(steps[i]),
                # a graded trace shows the answer the grader read (Math-Verify's, for math)
                answer=graded[i][1]
                if i in graded
                else extract_answer(final_texts[i], problem.kind, n_choices(problem)),
                correct=graded[i][0] if i in graded else None,
                cost=cost,
                meta=trace_meta,
            )
        )
    return traces


@dataclass
class _SingleCall:
    """Shared body of Direct and CoT: one prompt per problem, one greedy (or given) sample."""

    pack: Any = None
    params: SamplingParams | None = None
    call: str = "direct"
    block: str = "direct"

    @property
    def name(self) -> str:
        return self.block

    def solve(
        self, problems: Sequence[Problem], backend: LanguageModel, budget: Budget = UNLIMITED
    ) -> list[Trace]:
        if not problems:
            return []
        pack = resolve_pack(self.pack, backend)
        render = getattr(pack, self.call)
        prompts = [render(p) for p in problems]
        params = budget.cap(self.params or batch_sampling(pack, self.call, problems))
        outputs, seconds = timed_generate(backend, prompts, params)
        steps = [
            [Step(self.block, prompt_text(prompt), out[0].text, Cost.of(out[:1], seconds))]
            for prompt, out in zip(prompts, outputs)
        ]
        return finish_traces(problems, steps, [out[0].text for out in outputs])


class Direct(_SingleCall):
    """Ask for the final answer only (no reasoning)."""

    def __init__(self, pack: Any = None, params: SamplingParams | None = None) -> None:
        super().__init__(pack=pack, params=params, call="direct", block="direct")


class CoT(_SingleCall):
    """Zero-shot chain of thought: reason step by step, then state the answer."""

    def __init__(self, pack: Any = None, params: SamplingParams | None = None) -> None:
        super().__init__(pack=pack, params=params, call="cot", block="cot")


def majority_vote(answers: Sequence[str | None]) -> tuple[int | None, dict[str, int]]:
    """Index of the first sample carrying the most common non-empty answer, and the vote counts.

    Answers are compared after whitespace normalisation; ties go to the answer seen first, so the
    vote is deterministic given the samples.
    """
    keys = ["".join(a.split()) if a else "" for a in answers]
    counts = Counter(k for k in keys if k)
    if not counts:
        return None, {}
    best = max(counts.values())
    winner = next(k for k in keys if k and counts[k] == best)
    return keys.index(winner), dict(counts)


@dataclass
class SelfConsistency:
    """n chain-of-thought samples at ``temperature``, majority vote over extracted answers."""

    n: int = 5
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = 0
    pack: Any = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SelfConsistency needs n >= 1 samples, got {self.n}")
        if self.temperature <= 0:
            raise ValueError("SelfConsistency samples must be diverse: temperature must be > 0")

    @property
    def name(self) -> str:
        return f"sc{self.n}"

    @property
    def identity(self) -> dict[str, Any]:
        return {"n": self.n, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}

    def solve(
        self, problems: Sequence[Problem], backend: LanguageModel, budget: Budget = UNLIMITED
    ) -> list[Trace]:
        if not problems:
            return []
        pack = resolve_pack(self.pack, backend)
        prompts = [pack.cot(p) for p in problems]
        hint = batch_sampling(pack, "cot", problems)
        params = budget.cap(
            dataclasses.replace(
                hint, n=self.n, temperature=self.temperature, top_p=self.top_p, seed=self.seed
            )
        )
        outputs, seconds = timed_generate(backend, prompts, params)
        steps, finals, metas = [], [], []
        for problem, prompt, samples in zip(problems, prompts, outputs):
            answers = [extract_answer(c.text, problem.kind, n_choices(problem)) for c in samples]
            winner, votes = majority_vote(answers)
            final = samples[winner if winner is not None else 0].text
            steps.append(
                [
                    Step(
                        "sc",
                        prompt_text(prompt),
                        final,
                        Cost.of(samples, seconds),
                        meta={"samples": [c.text for c in samples], "answers": answers},
                    )
                ]
            )
            finals.append(final)
            metas.append({"votes": votes, "n_samples": len(samples)})
        return finish_traces(problems, steps, finals, metas)


#: strategy name -> "module:attribute" (methods register here; the controller never imports them eagerly)
STRATEGIES: dict[str, str] = {
    "direct": "reasonkit.strategies:Direct",
    "cot": "reasonkit.strategies:CoT",
    "sc": "reasonkit.strategies:SelfConsistency",
    "rlot": "reasonkit.navigators.strategy:RLoT",
    "fixed": "reasonkit.navigators.strategy:FixedSequence",
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name (``direct``, ``cot``, ``sc`` and those methods register)."""
    import importlib

    target = STRATEGIES.get(name)
    if target is None:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    module_name, attr = target.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"strategy {name!r} is not available in this installation ({exc})") from exc
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return factory(**options)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r} does not take these options {sorted(options)}: {exc}") from exc
