"""The navigator's state: the LLM's self-evaluation of the current step on 7 aspects (arXiv 2505.14140).

After every block the LLM scores the current step on A1 modelling correct, A2 clear enough to
continue, A3 calculation correct, B1 complex reasoning still needed, B2 alternative methods exist,
C1 close to the final answer, C2 all needed elements known: 1 false, 2 unsure, 3 true, 0 not
applicable. Anything the pack's parser cannot read scores 0, so a model that ignores the format
still yields a valid state. The state is the 7-vector of scores, a ``Box(0, 3, (7,), float32)``
observation; the network sees it normalised as ``(x - 1.5) / 1.5``.

    >>> from reasonkit.packs import load_pack
    >>> observation(load_pack("compact").parse_scores("33x12"))
    array([3., 3., 0., 1., 2., 0., 0.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from reasonkit.navigators.blocks import Request, ask
from reasonkit.packs import ASPECTS, PromptPack
from reasonkit.types import Problem, Step

OBS_DIM = len(ASPECTS)
OBS_LOW, OBS_HIGH = 0.0, 3.0
#: The paper's input normalisation: scores 0..3 map to -1..1.
NORM_CENTER, NORM_SCALE = 1.5, 1.5
#: The aspects that judge whether the step is right (used by the self-evaluation reward).
CORRECTNESS_ASPECTS = ("A1", "A2", "A3")


def observation_space() -> Any:
    """``Box(0, 3, (7,), float32)``: one score per aspect."""
    from gymnasium import spaces

    return spaces.Box(low=OBS_LOW, high=OBS_HIGH, shape=(OBS_DIM,), dtype=np.float32)


def observation(scores: Sequence[int]) -> np.ndarray:
    """The observation for seven scores in 0..3 (raises on anything else: parsers never produce it)."""
    values = np.asarray(scores, dtype=np.float32)
    if values.shape != (OBS_DIM,):
        raise ValueError(f"a state holds {OBS_DIM} scores ({', '.join(ASPECTS)}), got shape {values.shape}")
    if not np.all((values >= OBS_LOW) & (values <= OBS_HIGH)):
        raise ValueError(f"self-evaluation scores must lie in 0..3, got {list(scores)}")
    return values


def self_evaluate(
    pack: PromptPack, problem: Problem, steps: Sequence[str]
) -> Generator[Request, Step, tuple[int, ...]]:
    """Program: ask the LLM to score the current step; unparsable aspects score 0."""
    out = yield ask(pack, "self_evaluate", "self_evaluate", pack.self_evaluate(problem, steps), problem)
    return pack.parse_scores(out.output)


def correctness_estimate(scores: Sequence[int]) -> float:
    """The LLM's own belief that the step is right: the mean of the applicable correctness aspects
    mapped false 0, unsure 0.5, true 1; 0.5 (no information) when none applies."""
    applicable = [scores[ASPECTS.index(a)] for a in CORRECTNESS_ASPECTS if scores[ASPECTS.index(a)] > 0]
    if not applicable:
        return 0.5
    return float(np.mean([(s - 1) / 2 for s in applicable]))
