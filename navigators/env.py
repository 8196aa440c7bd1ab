"""``ThoughtEnv``: RL-of-Thoughts reasoning as a gymnasium environment, and its batched form.

One episode navigates one problem (arXiv 2505.14140): the observation is the LLM's 7-aspect
self-evaluation of the current step (``Box(0, 3, (7,), float32)``), an action is one of the five
logic blocks (``Discrete(5)``: reason, decompose, debate, refine, terminate), the transition rules
are those of :mod:`reasonkit.navigators.episode`. A non-terminal step earns the step reward (a PRM,
the self-evaluation, or 0); the final answer earns 1 if correct, else 0. Episodes end by
termination only (``truncated`` is always False): the depth limit forces a real final answer.

:class:`ThoughtVecEnv` is a stable-baselines3 ``VecEnv`` over ``n_envs`` ThoughtEnvs that advances
all of them together, one ``backend.generate`` per distinct call per round, so a local model runs a
padded batch and a server gets concurrent requests. Wrap the backend in
:class:`~reasonkit.backends.cached.CachedBackend` for training: greedy rollouts over a fixed
problem set revisit the same states, which then cost nothing.

    >>> env = ThoughtEnv(problems, backend, reward="self-eval")                       # doctest: +SKIP
    >>> obs, info = env.reset(seed=0); obs, r, terminated, truncated, info = env.step(1)  # doctest: +SKIP
    >>> venv = ThoughtVecEnv(problems, CachedBackend(backend), n_envs=16, seed=0)     # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from reasonkit.backends.base import LanguageModel
from reasonkit.kit.base import resolve_pack
from reasonkit.navigators.blocks import MAX_DEPTH, N_ACTIONS, Request
from reasonkit.navigators.episode import Episode, Transition, grade, run_programs
from reasonkit.navigators.rewards import StepReward, make_reward
from reasonkit.navigators.state import OBS_DIM, observation, observation_space
from reasonkit.packs import PromptPack
from reasonkit.types import Problem, Step

StepResult = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


class ThoughtEnv(gym.Env):
    """Navigate one problem at a time; problems are drawn uniformly from ``problems`` at reset.

    ``reset(options={"problem": p})`` or ``{"problem_index": i}`` picks the problem instead.
    ``reward`` is a name from :data:`reasonkit.navigators.rewards.REWARDS` or a StepReward.
    Episode statistics (``info["episode"]``) are the wrappers' job: wrap it in gymnasium's
    ``RecordEpisodeStatistics`` or SB3's ``Monitor``. Registered as ``reasonkit/ThoughtEnv-v0``
    (:mod:`reasonkit.navigators.gym_envs`).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        problems: Sequence[Problem],
        backend: LanguageModel,
        *,
        pack: PromptPack | str | None = None,
        reward: str | StepReward = "outcome",
        max_depth: int = MAX_DEPTH,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(
                f"ThoughtEnv has no render modes (metadata['render_modes'] is empty), got render_mode="
                f"{render_mode!r}; leave it None and read info['blocks'] or the episode's steps instead"
            )
        self.render_mode = render_mode
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("ThoughtEnv needs at least one problem")
        ungraded = [p.id for p in self.problems if not p.answer.strip()]
        if ungraded:
            raise ValueError(
                f"ThoughtEnv rewards correct answers, so every problem needs a gold answer; "
                f"{len(ungraded)} have none (e.g. {ungraded[:3]})"
            )
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self.backend = backend
        self.pack = resolve_pack(pack, backend)
        self.reward = make_reward(reward) if isinstance(reward, str) else reward
        self.max_depth = max_depth
        self.observation_space = observation_space()
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.episode: Episode | None = None
        self._return = 0.0
        self._started = 0.0

    # -- programs (shared with ThoughtVecEnv, which runs many envs' programs together) ---------------
    def reset_program(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> Generator[Request, Step, tuple[np.ndarray, dict[str, Any]]]:
        super().reset(seed=seed)
        problem = self._pick(options or {})
        self.episode = Episode(problem, self.pack, self.max_depth)
        self._return, self._started = 0.0, time.perf_counter()
        scores = yield from self.episode.start()
        return observation(scores), {"problem_id": problem.id}

    def step_program(self, action: Any) -> Generator[Request, Step, Transition]:
        episode = self._require_episode()
        return (yield from episode.advance(_as_action(action)))

    def _pick(self, options: dict[str, Any]) -> Problem:
        unknown = set(options) - {"problem", "problem_index"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; use 'problem' or 'problem_index'")
        if "problem" in options:
            if not isinstance(options["problem"], Problem):
                raise TypeError("reset option 'problem' must be a reasonkit.types.Problem")
            return options["problem"]
        if "problem_index" in options:
            index = int(options["problem_index"])
            if not 0 <= index < len(self.problems):
                raise ValueError(f"problem_index {index} is outside 0..{len(self.problems) - 1}")
            return self.problems[index]
        return self.problems[int(self.np_random.integers(len(self.problems)))]

    def _require_episode(self) -> Episode:
        if self.episode is None or self.episode.done:
            raise RuntimeError("call reset() before step(): the episode has not started or is over")
        return self.episode

    # -- gymnasium API --------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        [result] = run_programs(self.backend, [self.reset_program(seed=seed, options=options)])
        return result

    def step(self, action: Any) -> StepResult:
        episode = self._require_episode()
        [transition] = run_programs(self.backend, [self.step_program(action)])
        [result] = finish_steps([self], [episode], [transition])
        return result

    def render(self) -> None:
        return None

    def episode_statistics(self) -> dict[str, float]:
        """The current episode's return, length (blocks) and seconds, as SB3's Monitor reports them."""
        blocks = len(self.episode.blocks) if self.episode is not None else 0
        return {"r": self._return, "l": blocks, "t": round(time.perf_counter() - self._started, 6)}


def _as_action(action: Any) -> int:
    value = np.asarray(action)
    if value.shape not in ((), (1,)) or not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"an action is one integer in 0..{N_ACTIONS - 1}, got {action!r}")
    return int(value.reshape(()))


def finish_steps(
    envs: Sequence[ThoughtEnv], episodes: Sequence[Episode], transitions: Sequence[Transition]
) -> list[StepResult]:
    """Rewards for a batch of transitions: terminal ones graded together, the others scored by each
    env's step reward in one batch (all envs of a vector share one reward object)."""
    ended = [i for i, t in enumerate(transitions) if t.done]
    going = [i for i, t in enumerate(transitions) if not t.done]
    rewards = [0.0] * len(transitions)
    verdicts = grade([episodes[i].problem for i in ended], [episodes[i].final_text or "" for i in ended])
    for i, ok in zip(ended, verdicts):
        rewards[i] = float(ok)
    if going:
        scored = envs[going[0]].reward(
            [episodes[i].problem for i in going],
            [list(episodes[i].steps) for i in going],
            [transitions[i].scores or () for i in going],
        )
        for i, value in zip(going, scored):
            rewards[i] = float(value)
    correct = dict(zip(ended, verdicts))
    results: list[StepResult] = []
    for i, (env, episode, t) in enumerate(zip(envs, episodes, transitions)):
        env._return += rewards[i]
        info: dict[str, Any] = {
            "problem_id": episode.problem.id,
            "block": t.block,
            "action": t.action,
            "depth": episode.depth,
            "tokens": episode.cost.tokens,
        }
        obs = observation(t.scores) if t.scores is not None else np.zeros(OBS_DIM, dtype=np.float32)
        if t.done:  # info["episode"] is left to wrappers (gymnasium's RecordEpisodeStatistics, SB3's Monitor)
            info.update(ended_by=t.ended_by, correct=correct[i], blocks=list(episode.blocks))
        results.append((obs, rewards[i], t.done, False, info))
    return results


class ThoughtVecEnv(DummyVecEnv):
    """``n_envs`` ThoughtEnvs stepped together with one backend call per distinct call per round.

    Follows stable-baselines3's VecEnv contract: finished episodes reset automatically, their last
    observation in ``info["terminal_observation"]`` and their statistics in ``info["episode"]`` (what
    ``VecMonitor`` would add; r, l, t); ``seed(s)`` seeds slot ``i`` with ``s + i``, so
    slot ``i`` draws the same problems as ``ThoughtEnv(...).reset(seed=s + i)``.
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        backend: LanguageModel,
        n_envs: int = 8,
        *,
        pack: PromptPack | str | None = None,
        reward: str | StepReward = "outcome",
        max_depth: int = MAX_DEPTH,
        seed: int | None = None,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        first = ThoughtEnv(problems, backend, pack=pack, reward=reward, max_depth=max_depth)
        envs = [first] + [
            ThoughtEnv(first.problems, backend, pack=first.pack, reward=first.reward, max_depth=max_depth)
            for _ in range(n_envs - 1)
        ]
        super().__init__([lambda env=env: env for env in envs])  # type: ignore[misc]
        self.backend = backend
        self.thought_envs = envs
        if seed is not None:
            self.seed(seed)

    def reset(self) -> np.ndarray:
        programs = [
            env.reset_program(seed=self._seeds[i], options=self._options[i] or None)
            for i, env in enumerate(self.thought_envs)
        ]
        for i, (obs, info) in enumerate(run_programs(self.backend, programs)):
            self._save_obs(i, obs)
            self.reset_infos[i] = info
        self._reset_seeds()
        self._reset_options()
        return self._obs_from_buf()  # type: ignore[return-value]

    def step_wait(self) -> Any:
        envs = self.thought_envs
        episodes = [env._require_episode() for env in envs]
        transitions = run_programs(self.backend, [env.step_program(a) for env, a in zip(envs, self.actions)])
        results = finish_steps(envs, episodes, transitions)
        done = [i for i, r in enumerate(results) if r[2]]
        statistics = {i: envs[i].episode_statistics() for i in done}  # before the resets clear them
        fresh = run_programs(self.backend, [envs[i].reset_program() for i in done])
        restarted = dict(zip(done, fresh))
        for i, (obs, reward, terminated, truncated, info) in enumerate(results):
            self.buf_rews[i], self.buf_dones[i] = reward, terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if i in restarted:
                info["terminal_observation"] = obs
                info["episode"] = statistics[i]  # SB3's VecMonitor convention, built in
                obs, self.reset_infos[i] = restarted[i]
            self.buf_infos[i] = info
            self._save_obs(i, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), deepcopy(self.buf_infos)
