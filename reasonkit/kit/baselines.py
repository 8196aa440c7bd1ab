"""Baseline strategies — the comparisons every reasoning paper reports:

  - :class:`Direct`: ask for the answer only.
  - :class:`CoT`: zero-shot chain of thought ("step by step"), one sample.
  - :class:`SelfConsistency`: n chain-of-thought samples, majority vote over their final answers
    (Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning").

Prompts come from a prompt pack (:mod:`reasonkit.packs`): the natural-language pack for
instruction-tuned LLMs, the compact pack for the built-in model. By default a strategy uses the pack
the backend declares (``backend.prompt_pack``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reasonkit.answers import extract_answer
from reasonkit.backends.base import LanguageModel
from reasonkit.kit.base import (
    UNLIMITED,
    Budget,
    batch_sampling,
    finish_traces,
    n_choices,
    resolve_pack,
    timed_generate,
)
from reasonkit.types import Cost, Problem, SamplingParams, Step, Trace, prompt_text


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
            [Step(self.block, prompt_text(prompt), out[0].text, Cost.of(out[:1], seconds), meta=out[0].meta)]
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
