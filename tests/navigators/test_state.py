"""The self-evaluation state: parsing through both packs, observations, the self-evaluation reward."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonkit.navigators.episode import run_programs
from reasonkit.navigators.rewards import OutcomeReward, SelfEvalReward, make_reward
from reasonkit.navigators.state import correctness_estimate, observation, observation_space, self_evaluate
from reasonkit.packs import load_pack
from reasonkit.types import Completion, Problem

PROBLEM = Problem(id="p", question="1+2*3", answer="7", kind="arith")


class FixedLM:
    name, capabilities = "fixed", frozenset()

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, prompts, params):
        return [[Completion(self.text, 1, 1)] for _ in prompts]


NATURAL_REPLY = """A1 score=3 reason=derived from the problem
A2 score=2 reason=somewhat clear
A3: score = 1 reason=6*1 is wrong
B1 score=[3] reason=more work
B2 score=0 reason=n/a
C1 score=9 reason=out of range
C2 reason=no score given"""


@pytest.mark.parametrize(
    "pack_name, reply, expected",
    [
        ("compact", "3321203", (3, 3, 2, 1, 2, 0, 3)),
        ("compact", "33", (3, 3, 0, 0, 0, 0, 0)),  # short: the rest is unparsable
        ("compact", "3x3y1 2 3 3", (3, 3, 1, 2, 3, 3, 0)),  # noise between digits is skipped
        ("compact", "3949333", (3, 0, 0, 0, 3, 3, 3)),  # 9 and 4 are not scores: 0
        ("compact", "", (0,) * 7),
        ("natural", NATURAL_REPLY, (3, 2, 1, 3, 0, 0, 0)),
        ("natural", "I refuse to score this.", (0,) * 7),
    ],
)
def test_self_evaluation_parsing_unparsable_scores_zero(pack_name, reply, expected):
    pack = load_pack(pack_name)
    [scores] = run_programs(FixedLM(reply), [self_evaluate(pack, PROBLEM, ["2*3=6|1+6"])])
    assert scores == expected
    assert observation_space().contains(observation(scores))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_reply_gives_a_valid_state(text):
    for name in ("compact", "natural"):
        scores = load_pack(name).parse_scores(text)
        obs = observation(scores)
        assert obs.shape == (7,) and obs.dtype == np.float32 and observation_space().contains(obs)


@pytest.mark.parametrize("bad", [(1, 2, 3), (0, 0, 0, 0, 0, 0, 4), (0, 0, 0, 0, 0, 0, -1)])
def test_observation_rejects_malformed_scores(bad):
    with pytest.raises(ValueError, match="score"):
        observation(bad)


@pytest.mark.parametrize(
    "scores, expected",
    [
        ((3, 3, 3, 1, 1, 1, 1), 1.0),  # all correctness aspects true
        ((1, 1, 1, 3, 3, 3, 3), 0.0),  # all false, whatever the rest says
        ((3, 2, 0, 0, 0, 0, 0), 0.75),  # A3 not applicable: mean of 1.0 and 0.5
        ((0, 0, 0, 3, 3, 3, 3), 0.5),  # nothing applicable: no information
    ],
)
def test_self_eval_reward_maps_correctness_aspects(scores, expected):
    assert correctness_estimate(scores) == pytest.approx(expected)
    assert SelfEvalReward()([PROBLEM], [["s"]], [scores]) == [pytest.approx(expected)]
    assert OutcomeReward()([PROBLEM], [["s"]], [scores]) == [0.0]


def test_unknown_reward_and_prm_without_model_fail_clearly():
    with pytest.raises(ValueError, match="unknown reward 'accuracy'"):
        make_reward("accuracy")
    with pytest.raises(ValueError, match="needs a process reward model"):
        make_reward("prm")
