"""Dueling double DQN on stable-baselines3, with RL-of-Thoughts' training rules (arXiv 2505.14140).

``DuelingDoubleDQN`` is SB3's ``DQN`` with the paper's algorithm where the two differ:

==========================  ===============================  =====================================
                            SB3 DQN                          here (the paper's reference code)
==========================  ===============================  =====================================
network                     MLP                              dueling head (:mod:`.network`)
TD target                   max_a Q_target(s', a)            Q_target(s', argmax_a Q_online(s', a))
loss                        Huber, grad-norm clip 10         MSE, no clipping
exploration                 linear schedule, one coin for    eps = max(final, decay ** t) per env
                            the whole vector of envs         step t, one coin per env
target sync                 every N env steps                every N gradient updates (50)
learning rate               function of training progress    halved every 1000 episodes (StepLR)
learning starts             ``learning_starts`` steps        when the replay buffer (500) is full
updates                     ``gradient_steps`` per rollout   one per env step
stored action               the action sampled               the action the env ran (refine at
                                                             depth 0 is stored as reason)
==========================  ===============================  =====================================

Everything else (replay buffer, target network, ``save``/``load`` zip files, callbacks, logger) is
SB3's own, so SB3 users can read and extend it.

    >>> model = DuelingDoubleDQN(env=ThoughtVecEnv(problems, backend, n_envs=20), seed=0)  # doctest: +SKIP
    >>> model.learn(total_timesteps=10_000)                                               # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import update_learning_rate
from torch.nn import functional as F

from reasonkit.navigators.network import DuelingDQNPolicy


def double_q_targets(
    online: torch.nn.Module,
    target: torch.nn.Module,
    rewards: torch.Tensor,
    next_states: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Double-DQN targets ``r + gamma * (1 - done) * Q_target(s', argmax_a Q_online(s', a))``, shape (B, 1)."""
    with torch.no_grad():
        best = online(next_states).argmax(dim=1, keepdim=True)  # (B, 1)
        next_q = target(next_states).gather(1, best)  # (B, 1)
        return rewards.reshape(-1, 1) + (1 - dones.reshape(-1, 1).float()) * gamma * next_q


class DuelingDoubleDQN(DQN):
    """SB3 DQN with the dueling network, double-Q targets and the paper's schedules (module docstring).

    Defaults are the paper's: lr 0.01 halved every 1000 episodes, gamma 0.9, batch 64, replay 500,
    target sync every 50 updates, eps from 1.0 times 0.9995 per env step.
    """

    def __init__(
        self,
        policy: Any = DuelingDQNPolicy,
        env: Any = None,
        learning_rate: float = 0.01,
        buffer_size: int = 500,
        batch_size: int = 64,
        gamma: float = 0.9,
        target_update_interval: int = 50,
        exploration_initial_eps: float = 1.0,
        exploration_decay: float = 0.9995,
        exploration_final_eps: float = 0.0,
        lr_decay: float = 0.5,
        lr_decay_episodes: int = 1000,
        seed: int | None = None,
        device: str = "cpu",
        verbose: int = 0,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        if not 0 < exploration_decay <= 1:
            raise ValueError(f"exploration_decay must be in (0, 1], got {exploration_decay}")
        if not 0 < lr_decay <= 1 or lr_decay_episodes < 1:
            raise ValueError("lr_decay must be in (0, 1] and lr_decay_episodes >= 1")
        self.exploration_decay = exploration_decay
        self.lr_decay = lr_decay
        self.lr_decay_episodes = lr_decay_episodes
        n_envs = getattr(env, "num_envs", 1) if env is not None else 1
        capacity = max(buffer_size // n_envs, 1) * n_envs  # SB3 splits the buffer evenly across envs
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=capacity - 1,  # SB3 trains once num_timesteps > learning_starts
            batch_size=batch_size,
            tau=1.0,
            gamma=gamma,
            train_freq=(1, "step"),
            gradient_steps=-1,  # one update per transition collected
            target_update_interval=target_update_interval,
            exploration_initial_eps=exploration_initial_eps,
            exploration_final_eps=exploration_final_eps,
            seed=seed,
            device=device,
            verbose=verbose,
            _init_setup_model=_init_setup_model,
            **kwargs,
        )

    def _setup_model(self) -> None:
        # DQN._setup_model would add a linear exploration schedule and warn about env-step target
        # syncs; neither applies here.
        OffPolicyAlgorithm._setup_model(self)
        self._create_aliases()
        self.batch_norm_stats, self.batch_norm_stats_target = [], []
        self.exploration_rate = self.exploration_initial_eps
        if not hasattr(self, "_explore_rng"):  # kept across save/load so resumed runs continue the stream
            self._explore_rng = np.random.default_rng(self.seed)

    # -- schedules --------------------------------------------------------------------------------
    def epsilon_at(self, steps: int) -> float:
        """Exploration rate for the ``steps``-th env step: ``max(final, initial * decay ** steps)``."""
        return max(self.exploration_final_eps, self.exploration_initial_eps * self.exploration_decay**steps)

    def learning_rate_at(self, episodes: int) -> float:
        """StepLR by episodes: ``lr * lr_decay ** (episodes // lr_decay_episodes)``."""
        return float(self.learning_rate) * self.lr_decay ** (episodes // self.lr_decay_episodes)  # type: ignore[arg-type]

    def _update_learning_rate(self, optimizers: Any) -> None:
        lr = self.learning_rate_at(self._episode_num)
        self.logger.record("train/learning_rate", lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            update_learning_rate(optimizer, lr)

    # -- acting -----------------------------------------------------------------------------------
    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        self.exploration_rate = self.epsilon_at(self.num_timesteps + 1)
        greedy, _ = self.policy.predict(self._last_obs, deterministic=True)  # type: ignore[arg-type]
        explore = self._explore_rng.random(n_envs) < self.exploration_rate
        uniform = self._explore_rng.integers(int(self.action_space.n), size=n_envs)  # type: ignore[attr-defined]
        actions = np.where(explore, uniform, np.asarray(greedy).reshape(n_envs))
        return actions, actions

    def _store_transition(
        self,
        replay_buffer: Any,
        buffer_action: np.ndarray,
        new_obs: Any,
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        # Learn from what ran: ThoughtEnv reports the effective action (refine at depth 0 is reason).
        ran = np.array(
            [info.get("action", a) for info, a in zip(infos, buffer_action)], dtype=buffer_action.dtype
        )
        super()._store_transition(replay_buffer, ran, new_obs, reward, dones, infos)

    def _on_step(self) -> None:
        self._n_calls += 1
        self.logger.record("rollout/exploration_rate", self.exploration_rate)

    # -- learning ---------------------------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            targets = double_q_targets(
                self.q_net, self.q_net_target, data.rewards, data.next_observations, data.dones, self.gamma
            )
            current = self.q_net(data.observations).gather(1, data.actions.long())  # (B, 1)
            loss = F.mse_loss(current, targets)
            self.policy.optimizer.zero_grad()
            loss.backward()
            self.policy.optimizer.step()
            self._n_updates += 1
            if self._n_updates % self.target_update_interval == 0:
                self.q_net_target.load_state_dict(self.q_net.state_dict())
            losses.append(loss.item())
        self.policy.set_training_mode(False)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if losses:
            self.logger.record("train/loss", float(np.mean(losses)))
