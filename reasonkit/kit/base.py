"""The strategy kit: what every strategy is built from, below the methods that use it.

A strategy turns a batch of problems into :class:`~reasonkit.types.Trace` objects with a backend
(:class:`Strategy`). Every strategy here is batched across problems: one ``backend.generate`` call
serves a whole batch, so an HTTP backend fans the prompts out concurrently and a local model runs
them as one padded batch. This module holds the protocol, per-problem budgets, prompt-pack
resolution, timed generation and the grading of final texts into traces; :mod:`.baselines` the
baseline strategies. Methods (``reasonkit.navigators`` …) import from here; the registry that names
strategies for the CLI lives above them, in :mod:`reasonkit.strategies`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reasonkit.answers import extract_answer, grade_and_extract
from reasonkit.backends.base import LanguageModel
from reasonkit.types import Completion, Cost, Problem, Prompt, SamplingParams, Step, Trace


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
