"""ThoughtEnv under the stock wrappers (gymnasium's RecordEpisodeStatistics, SB3's Monitor) and
built by ``gymnasium.make`` from its registered id."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.wrappers import RecordEpisodeStatistics
from navigator_helpers import ScriptedArithLM
from stable_baselines3.common.monitor import Monitor

from reasonkit.navigators.env import ThoughtEnv, ThoughtVecEnv
from reasonkit.navigators.gym_envs import THOUGHT_ENV_ID
from reasonkit.tasks import arith

PLANS = [[0, 4], [4], [0, 0, 4]]  # reason then terminate; terminate at once; two reasons then terminate


@pytest.fixture(scope="module")
def problems():
    return arith.generate(6, split="train", seed=3, n_ops=[2, 3])


def run_plans(env, plans):
    """Play each plan as one episode (it may end before the plan does); return the returns and
    lengths counted here, and each episode's last info."""
    sums, lengths, infos = [], [], []
    for episode, plan in enumerate(plans):
        env.reset(seed=episode)
        total, steps = 0.0, 0
        for action in plan:
            _, reward, terminated, truncated, info = env.step(action)
            total, steps = total + reward, steps + 1
            if terminated or truncated:
                break
        assert terminated, "every plan ends with terminate"
        sums.append(total)
        lengths.append(steps)
        infos.append(info)
    return sums, lengths, infos


def test_record_episode_statistics_wraps_the_env(problems):
    env = RecordEpisodeStatistics(ThoughtEnv(problems, ScriptedArithLM()))
    sums, lengths, infos = run_plans(env, PLANS)
    assert [info["episode"]["r"] for info in infos] == pytest.approx(sums)
    assert [int(info["episode"]["l"]) for info in infos] == lengths
    assert list(env.return_queue) == pytest.approx(sums) and list(env.length_queue) == lengths


def test_sb3_monitor_wraps_the_env(problems, tmp_path):
    env = Monitor(ThoughtEnv(problems, ScriptedArithLM()), str(tmp_path / "monitor"))
    sums, lengths, infos = run_plans(env, PLANS)
    assert env.get_episode_rewards() == pytest.approx(sums)
    assert env.get_episode_lengths() == lengths and lengths[:2] == [2, 1]
    assert [info["episode"]["r"] for info in infos] == pytest.approx(sums)
    assert (tmp_path / "monitor.monitor.csv").read_text().count("\n") == 2 + len(PLANS)  # header lines + rows


def test_the_vector_env_still_reports_episodes_like_vec_monitor(problems):
    venv = ThoughtVecEnv(problems, ScriptedArithLM(), n_envs=2, seed=0)
    venv.reset()
    _, rewards, dones, infos = venv.step([4, 0])
    assert list(dones) == [True, False]
    assert infos[0]["episode"] == {"r": float(rewards[0]), "l": 1, "t": infos[0]["episode"]["t"]}
    assert "episode" not in infos[1]


def test_gymnasium_make_builds_the_registered_env(problems):
    env = gymnasium.make(THOUGHT_ENV_ID, problems=problems, backend=ScriptedArithLM(), max_depth=4)
    assert env.spec is not None and env.spec.id == THOUGHT_ENV_ID
    assert isinstance(env.unwrapped, ThoughtEnv) and env.unwrapped.max_depth == 4
    assert env.render_mode is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure
        gym_check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="no render modes"):
        gymnasium.make(THOUGHT_ENV_ID, problems=problems, backend=ScriptedArithLM(), render_mode="human")


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: ~25 s on 2 busy cores
def test_gymnasium_make_with_defaults_in_a_fresh_interpreter():
    """Nothing imported first: gymnasium imports reasonkit.navigators through the id's module prefix,
    and the defaults are the built-in model on arith training problems."""
    code = (
        "import gymnasium\n"
        "env = gymnasium.make('reasonkit.navigators:reasonkit/ThoughtEnv-v0', n_problems=3)\n"
        "obs, info = env.reset(seed=0)\n"
        "print(env.spec.id, type(env.unwrapped).__name__, env.unwrapped.backend.name, obs.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["reasonkit/ThoughtEnv-v0", "ThoughtEnv", "builtin", "(7,)"]


def test_gymnasium_make_defaults_to_the_builtin_model_on_arith():
    env = gymnasium.make(THOUGHT_ENV_ID, n_problems=3, max_depth=2)
    assert env.unwrapped.backend.name == "builtin" and len(env.unwrapped.problems) == 3
    assert {p.kind for p in env.unwrapped.problems} == {"arith"}
