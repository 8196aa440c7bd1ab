"""Rewards for RL-of-Thoughts navigation (arXiv 2505.14140, Sec. 3.2).

A terminal step (the episode's final answer) is always rewarded with correctness: 1 when the answer
is right, else 0. A non-terminal step is rewarded by a :class:`StepReward`:

- ``prm``       a process reward model's score of the new step (the paper's choice; see
                :mod:`reasonkit.navigators.prm`);
- ``self-eval`` the LLM's own self-evaluation of the new step (its correctness aspects A1–A3,
                false 0 / unsure 0.5 / true 1): a PRM stand-in for backends that have none;
- ``outcome``   0 (only the final answer counts; the paper's outcome-only ablation).

    >>> reward = make_reward("self-eval")
    >>> reward([problem], [["3+4=7"]], [(3, 3, 3, 1, 2, 3, 3)])    # doctest: +SKIP
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from reasonkit.navigators.prm import ProcessRewardModel, load_prm
from reasonkit.navigators.state import correctness_estimate
from reasonkit.types import Problem

REWARDS = ("outcome", "self-eval", "prm")


@runtime_checkable
class StepReward(Protocol):
    """Rewards for non-terminal steps, one per (problem, history, new state), batched."""

    name: str

    def __call__(
        self,
        problems: Sequence[Problem],
        histories: Sequence[Sequence[str]],
        scores: Sequence[tuple[int, ...]],
    ) -> list[float]: ...


class OutcomeReward:
    """No reward until the final answer."""

    name = "outcome"

    def __call__(
        self,
        problems: Sequence[Problem],
        histories: Sequence[Sequence[str]],
        scores: Sequence[tuple[int, ...]],
    ) -> list[float]:
        return [0.0] * len(problems)


class SelfEvalReward:
    """The LLM's own belief that the new step is right (mean of its applicable A1–A3 scores)."""

    name = "self-eval"

    def __call__(
        self,
        problems: Sequence[Problem],
        histories: Sequence[Sequence[str]],
        scores: Sequence[tuple[int, ...]],
    ) -> list[float]:
        return [correctness_estimate(s) for s in scores]


class PRMReward:
    """A process reward model's score of the last step of each history (one batched pass)."""

    def __init__(self, prm: ProcessRewardModel) -> None:
        self.prm = prm
        self.name = f"prm:{prm.name}"

    def __call__(
        self,
        problems: Sequence[Problem],
        histories: Sequence[Sequence[str]],
        scores: Sequence[tuple[int, ...]],
    ) -> list[float]:
        return self.prm.last_step_scores([(p.question, list(h)) for p, h in zip(problems, histories)])


def make_reward(name: str, prm: str | None = None, **prm_options: Any) -> StepReward:
    """The step reward ``name`` (one of :data:`REWARDS`); ``prm`` is a PRM spec for ``name="prm"``."""
    if name == "outcome":
        return OutcomeReward()
    if name == "self-eval":
        return SelfEvalReward()
    if name == "prm":
        if not prm:
            raise ValueError(
                "reward 'prm' needs a process reward model: pass --prm FORMAT:MODEL, e.g. "
                "'math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm' or 'qwen-prm:Qwen/Qwen2.5-Math-PRM-7B'"
            )
        return PRMReward(load_prm(prm, **prm_options))
    raise ValueError(f"unknown reward {name!r}; choose one of {REWARDS}")
