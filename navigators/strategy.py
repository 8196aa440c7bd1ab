"""Controller strategies that reason with logic blocks: a trained navigator, or a fixed block sequence.

- :class:`RLoT` — RL-of-Thoughts at test time (arXiv 2505.14140): the navigator picks each block
  greedily from the LLM's self-evaluation, one run per problem. ``reasonkit eval --strategy rlot
  --navigator PATH`` builds it through ``make_strategy("rlot", navigator=PATH)``.
- :class:`FixedSequence` — the paper's ablation baseline: the same blocks and transition rules, but
  a fixed order (the final-answer check and the depth limit still end an episode early).

Both batch across problems: every problem starts together, and each round advances all unfinished
problems by one block with one backend call per distinct prompt-pack call. A transferred navigator
(trained on another model or task) runs unchanged: the state it reads is always the 7 scores.

    >>> from reasonkit.strategies import make_strategy
    >>> make_strategy("fixed", blocks="decompose,reason").name
    'fixed:decompose,reason'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasonkit.backends.base import LanguageModel
from reasonkit.kit.base import UNLIMITED, Budget, finish_traces, resolve_pack
from reasonkit.navigators.blocks import MAX_DEPTH
from reasonkit.navigators.episode import Episode, run_programs
from reasonkit.navigators.navigator import Navigator
from reasonkit.navigators.state import observation
from reasonkit.packs import BLOCK_IDS, BLOCKS
from reasonkit.types import Problem, Trace

#: Chooses the next action for each unfinished episode (given in the same order).
Policy = Callable[[Sequence[Episode]], Sequence[int]]


def navigate(
    problems: Sequence[Problem],
    backend: LanguageModel,
    policy: Policy,
    *,
    pack: Any = None,
    max_depth: int = MAX_DEPTH,
    budget: Budget = UNLIMITED,
    meta: dict[str, Any] | None = None,
) -> list[Trace]:
    """Run one episode per problem under ``policy``, all problems in lockstep; graded traces.

    A problem whose cost reaches the budget stops before its next block (``meta["budget_exhausted"]``)
    and keeps its last step as the final text.
    """
    if not problems:
        return []
    the_pack = resolve_pack(pack, backend)
    episodes = [Episode(p, the_pack, max_depth) for p in problems]
    run_programs(backend, [e.start() for e in episodes])
    while True:
        active = [e for e in episodes if not e.done]
        for e in active:
            if budget.exhausted(e.cost):
                e.abandon()
        going = [e for e in active if not e.done]
        if not going:
            break
        actions = policy(going)
        run_programs(backend, [e.advance(int(a)) for e, a in zip(going, actions)])
    metas = [
        {
            **(meta or {}),
            "blocks": list(e.blocks),
            "ended_by": e.ended_by,
            "depth": e.depth,
            **({"budget_exhausted": True} if e.ended_by == "budget" else {}),
        }
        for e in episodes
    ]
    return finish_traces(problems, [e.trace for e in episodes], [e.final_text or "" for e in episodes], metas)


@dataclass
class RLoTOptions:
    """options of --strategy rlot (an RL-of-Thoughts navigator)"""

    navigator: str | None = field(
        default=None,
        metadata={"help": "the navigator: the navigator.safetensors a `reasonkit train-navigator` run wrote, or "
                          "a shipped preset (builtin-arith, builtin-arith-hard: for the built-in model; builtin-v1-arith, "
                          "builtin-v1-arith-hard: for builtin-v1)"},
    )  # fmt: skip
    max_depth: int | None = field(
        default=None,
        metadata={"help": "non-terminal blocks before terminate is forced (default: the navigator's)"},
    )


class RLoT:
    """Greedy navigation with a trained navigator (a file path, a preset name, or a Navigator)."""

    name = "rlot"
    Options = RLoTOptions

    def __init__(
        self, navigator: str | Path | Navigator | None = None, pack: Any = None, max_depth: int | None = None
    ) -> None:
        if navigator is None:
            from reasonkit.navigators.presets import PRESETS

            raise ValueError(
                "the rlot strategy needs a navigator: pass --navigator with the navigator.safetensors a "
                f"`reasonkit train-navigator` run wrote, or a shipped preset ({', '.join(PRESETS) or 'none yet'})"
            )
        self.navigator = navigator if isinstance(navigator, Navigator) else Navigator.load(navigator)
        self.source = str(navigator) if not isinstance(navigator, Navigator) else "<in memory>"
        self.pack = pack
        self.max_depth = max_depth or self.navigator.max_depth or MAX_DEPTH
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {self.max_depth}")

    @property
    def identity(self) -> dict[str, Any]:
        """What makes two runs of this strategy the same (a run directory refuses another)."""
        return {"navigator_sha256": self.navigator.fingerprint[:16], "max_depth": self.max_depth}

    def _policy(self, episodes: Sequence[Episode]) -> Sequence[int]:
        states = np.stack([observation(e.scores or (0,) * 7) for e in episodes])
        return [int(a) for a in self.navigator.act(states)]

    def solve(
        self, problems: Sequence[Problem], backend: LanguageModel, budget: Budget = UNLIMITED
    ) -> list[Trace]:
        meta = {
            "navigator": self.source,
            "navigator_model": self.navigator.metadata.get("model"),
            "navigator_task": self.navigator.metadata.get("task"),
        }
        return navigate(
            problems,
            backend,
            self._policy,
            pack=self.pack,
            max_depth=self.max_depth,
            budget=budget,
            meta=meta,
        )


#: The fixed sequence used when none is given: decompose the problem, then plain steps.
DEFAULT_SEQUENCE = ("decompose", "reason", "reason", "reason", "reason")


@dataclass
class FixedSequenceOptions:
    """options of --strategy fixed (a fixed block sequence)"""

    blocks: str = field(
        default=",".join(DEFAULT_SEQUENCE),
        metadata={"help": f"comma-separated logic blocks run in order, then terminate ({', '.join(BLOCKS)})"},
    )
    max_depth: int = field(
        default=MAX_DEPTH, metadata={"help": "non-terminal blocks before terminate is forced"}
    )


class FixedSequence:
    """The same blocks in a fixed order (the paper's ablation baseline); terminate after the sequence."""

    Options = FixedSequenceOptions

    def __init__(
        self, blocks: str | Sequence[str] = DEFAULT_SEQUENCE, pack: Any = None, max_depth: int = MAX_DEPTH
    ) -> None:
        names = [b.strip() for b in blocks.split(",")] if isinstance(blocks, str) else list(blocks)
        unknown = [b for b in names if b not in BLOCK_IDS]
        if not names or unknown:
            raise ValueError(
                f"blocks must be a non-empty comma-separated list of {BLOCKS}, got {blocks!r}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        self.blocks = tuple(names)
        self.pack = pack
        self.max_depth = max_depth
        self.name = "fixed:" + ",".join(self.blocks)
        self.identity = {"max_depth": max_depth}

    def _policy(self, episodes: Sequence[Episode]) -> Sequence[int]:
        return [
            BLOCK_IDS[self.blocks[len(e.blocks)]]
            if len(e.blocks) < len(self.blocks)
            else BLOCK_IDS["terminate"]
            for e in episodes
        ]

    def solve(
        self, problems: Sequence[Problem], backend: LanguageModel, budget: Budget = UNLIMITED
    ) -> list[Trace]:
        return navigate(
            problems,
            backend,
            self._policy,
            pack=self.pack,
            max_depth=self.max_depth,
            budget=budget,
            meta={"sequence": list(self.blocks)},
        )
