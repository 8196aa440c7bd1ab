"""ThoughtEnv and ThoughtVecEnv: the env checkers, batched == sequential, caching, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from navigator_helpers import ScriptedArithLM, short_pack
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from reasonkit.backends.cached import CachedBackend
from reasonkit.navigators.env import ThoughtEnv, ThoughtVecEnv
from reasonkit.tasks import arith
from reasonkit.types import Problem


@pytest.fixture(scope="module")
def problems():
    return arith.generate(12, split="train", seed=3, n_ops=[2, 4, 6])


def test_gymnasium_env_checker_passes_on_a_real_transformers_model(tiny_hf_backend, problems):
    env = ThoughtEnv(problems, tiny_hf_backend, pack=short_pack())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure
        gym_check_env(env, skip_render_check=True)


def test_sb3_env_checker_passes(tiny_hf_backend, problems):
    env = ThoughtEnv(problems, tiny_hf_backend, pack=short_pack())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


def test_spaces_and_episode_end(problems):
    env = ThoughtEnv(problems, ScriptedArithLM())
    assert env.observation_space.shape == (7,) and env.action_space.n == 5
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["problem_id"] in {p.id for p in problems}
    obs, reward, terminated, truncated, info = env.step(4)
    assert terminated and not truncated and info["ended_by"] == "terminate"
    assert reward in (0.0, 1.0) and reward == float(info["correct"])
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def _run_sequential(problems, lm, seeds, actions, reward):
    out = []
    for seed, plan in zip(seeds, actions):
        env = ThoughtEnv(problems, lm, reward=reward)
        obs, _ = env.reset(seed=seed)
        rows = [obs]
        for a in plan:
            obs, r, done, _, info = env.step(a)
            rows.append((obs if not done else None, r, done, info["problem_id"], info["block"]))
            if done:
                obs, _ = env.reset()  # the vector env resets finished slots itself
                rows.append(obs)
        out.append(rows)
    return out


def _run_batched(problems, lm, seed, n, actions, reward):
    venv = ThoughtVecEnv(problems, lm, n_envs=n, seed=seed, reward=reward)
    obs = venv.reset()
    rows = [[obs[i]] for i in range(n)]
    for t in range(len(actions[0])):
        obs, rewards, dones, infos = venv.step(np.array([plan[t] for plan in actions]))
        for i in range(n):
            rows[i].append((None if dones[i] else obs[i], rewards[i], bool(dones[i]), infos[i]["problem_id"],
                            infos[i]["block"]))  # fmt: skip
            if dones[i]:
                assert "terminal_observation" in infos[i] and not infos[i]["TimeLimit.truncated"]
                rows[i].append(obs[i])
    return rows


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x[1:] == y[1:]
            if x[0] is None or y[0] is None:
                assert x[0] is None and y[0] is None
            else:
                np.testing.assert_array_equal(x[0], y[0])


@pytest.mark.parametrize("reward", ["self-eval", "outcome"])
def test_batched_env_equals_sequential_env_on_the_same_seeds(problems, reward):
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, size=(5, 9)).tolist()
    batched_lm, sequential_lm = ScriptedArithLM(), ScriptedArithLM()
    batched = _run_batched(problems, batched_lm, seed=7, n=5, actions=actions, reward=reward)
    sequential = _run_sequential(problems, sequential_lm, [7 + i for i in range(5)], actions, reward)
    for b, s in zip(batched, sequential):
        _same(b, s)
    assert batched_lm.calls == sequential_lm.calls  # same work ...
    # ... in fewer backend calls: one per distinct pack call per round (calls with other sampling
    # parameters, e.g. final_check next to self_evaluate, still go separately).
    assert batched_lm.batches < sequential_lm.batches / 1.5


def test_batched_equals_sequential_on_a_real_transformers_model(tiny_hf_backend, problems):
    actions = [[1, 2, 3], [0, 3, 4], [2, 2, 0]]
    pack = short_pack()
    venv = ThoughtVecEnv(problems, tiny_hf_backend, n_envs=3, seed=1, pack=pack)
    first = venv.reset()
    for i in range(3):
        env = ThoughtEnv(problems, tiny_hf_backend, pack=pack)
        obs, _ = env.reset(seed=1 + i)
        np.testing.assert_array_equal(obs, first[i])
    steps = [venv.step(np.array([plan[t] for plan in actions])) for t in range(3)]
    for i, plan in enumerate(actions):
        env = ThoughtEnv(problems, tiny_hf_backend, pack=pack)
        env.reset(seed=1 + i)
        for t, a in enumerate(plan):
            obs, r, done, _, info = env.step(a)
            b_obs, b_rew, b_done, b_info = steps[t]
            assert (r, done, info["block"]) == (b_rew[i], b_done[i], b_info[i]["block"])
            np.testing.assert_array_equal(obs, b_info[i]["terminal_observation"] if done else b_obs[i])
            if done:
                env.reset()


def test_cached_backend_makes_revisited_states_free(problems):
    lm = ScriptedArithLM()
    cached = CachedBackend(lm)
    env = ThoughtEnv(problems, cached)
    for _ in range(2):
        env.reset(options={"problem_index": 0})
        for a in (1, 0, 0, 0, 0):
            if env.step(a)[2]:
                break
    calls_once = lm.calls
    assert cached.hits == cached.misses == calls_once  # the second episode was answered from the cache


def test_reset_options_pick_the_problem(problems):
    env = ThoughtEnv(problems, ScriptedArithLM())
    assert env.reset(options={"problem_index": 5})[1]["problem_id"] == problems[5].id
    extra = Problem(id="x", question="1+1", answer="2", kind="arith")
    assert env.reset(options={"problem": extra})[1]["problem_id"] == "x"
    with pytest.raises(ValueError, match="problem_index 99"):
        env.reset(options={"problem_index": 99})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"level": 3})


@pytest.mark.parametrize("action", [5, -1, 1.5, "reason", np.array([0, 1])])
def test_bad_actions_fail_clearly(problems, action):
    env = ThoughtEnv(problems, ScriptedArithLM())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


def test_bad_construction_fails_clearly(problems):
    lm = ScriptedArithLM()
    with pytest.raises(ValueError, match="at least one problem"):
        ThoughtEnv([], lm)
    with pytest.raises(ValueError, match="gold answer"):
        ThoughtEnv([Problem(id="u", question="1+1", answer="", kind="arith")], lm)
    with pytest.raises(ValueError, match="unknown reward"):
        ThoughtEnv(problems, lm, reward="likes")
    with pytest.raises(ValueError, match="n_envs"):
        ThoughtVecEnv(problems, lm, n_envs=0)
