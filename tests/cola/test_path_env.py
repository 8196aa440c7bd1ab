"""LayerPathEnv: both env checkers pass on the shipped model; episodes build the paths their moves say."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from reasonkit.cola.env import LayerPathEnv
from reasonkit.cola.grammar import LayerGrammar
from reasonkit.cola.scoring import PathScorer


@pytest.fixture(scope="module")
def scorer(builtin, arith_problems):
    # the direct prompt: the shortest answers, so the checkers' random episodes stay cheap
    return PathScorer(builtin, arith_problems[:4], call="direct")


def test_gymnasium_env_checker_passes(scorer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure
        gym_check_env(LayerPathEnv(scorer), skip_render_check=True)


def test_sb3_env_checker_passes(scorer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(LayerPathEnv(scorer), warn=True)


def test_an_episode_builds_the_path_its_moves_spell(scorer):
    env = LayerPathEnv(scorer, length_penalty=0.25)
    grammar = env.grammar
    target = (0, 1, 2, 3, 3, 4, 5, 7)
    obs, info = env.reset(seed=0, options={"problem_index": 0})
    assert info["problem_id"] == scorer.problems[0].id and obs["problem"] == 0
    for move in grammar.parse(target):
        assert env.action_masks()[env.moves.index(move)]
        obs, reward, terminated, truncated, info = env.step(env.moves.index(move))
        assert env.observation_space.contains(obs) and not truncated
    assert terminated and info["path"] == target and not info["illegal"]
    [outcome] = scorer.score(target, [0])
    assert reward == pytest.approx(outcome.reward - 0.25 * len(target) / 8)
    assert info["correct"] == outcome.correct
    assert list(obs["path"][: len(target)]) == [layer + 1 for layer in target]
    assert not obs["path"][len(target) :].any()


def test_stop_keeps_the_rest_and_an_illegal_move_stops(scorer):
    env = LayerPathEnv(scorer)
    env.reset(options={"problem_index": 1})
    *_, terminated, _, info = env.step(env.stop_action)
    assert terminated and info["path"] == tuple(range(8))
    env.reset(options={"problem_index": 1})
    env.step(env.moves.index(next(m for m in env.moves if m.size == 4 and m.times == 1)))
    env.step(env.moves.index(next(m for m in env.moves if m.size == 4 and m.times == 1)))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)  # the cursor passed the last layer: the episode ended
    env.reset(options={"problem_index": 1})
    env.step(env.moves.index(next(m for m in env.moves if m.size == 4 and m.times == 1)))
    env.step(env.moves.index(next(m for m in env.moves if m.size == 3 and m.times == 1)))
    masks = env.action_masks()
    assert not masks[env.moves.index(next(m for m in env.moves if m.size == 2))] and masks[env.stop_action]
    *_, terminated, _, info = env.step(env.moves.index(next(m for m in env.moves if m.size == 2)))
    assert terminated and info["illegal"] and info["path"] == tuple(range(8))


def test_bad_actions_and_options_are_refused(scorer):
    env = LayerPathEnv(scorer)
    env.reset(seed=0)
    for bad in (-1, env.stop_action + 1, 1.5, np.array([1, 2])):
        with pytest.raises(ValueError, match="an action is one integer"):
            env.step(bad)
    with pytest.raises(ValueError, match="problem_index"):
        env.reset(options={"problem": 3})
    with pytest.raises(ValueError, match="outside"):
        env.reset(options={"problem_index": 99})
    with pytest.raises(ValueError, match="layers"):
        LayerPathEnv(scorer, LayerGrammar(6))
