"""The navigator's network: the paper's dueling Q-network (arXiv 2505.14140), and its SB3 policy.

``DuelingQNet`` (plain torch, what a saved navigator holds):

    x = (state - 1.5) / 1.5                       # scores 0..3 -> -1..1          (B, 7)
    h = relu(Linear(7, 32)(x))                                                     # (B, 32)
    A = Linear(32, 5)(relu(Linear(32, 32)(h)))    # advantage of each block        (B, 5)
    V = Linear(32, 1)(relu(Linear(32, 32)(h)))    # value of the state             (B, 1)
    Q = V + A - mean(A)                                                            # (B, 5)

2,566 parameters. ``DuelingQNetwork`` and ``DuelingDQNPolicy`` put it behind stable-baselines3's
``QNetwork`` / ``DQNPolicy`` interfaces, so SB3's DQN machinery (replay buffer, target network,
save/load, callbacks) drives it.

    >>> sum(p.numel() for p in DuelingQNet().parameters())
    2566
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from reasonkit.navigators.blocks import N_ACTIONS
from reasonkit.navigators.state import NORM_CENTER, NORM_SCALE, OBS_DIM

HIDDEN = 32


class DuelingQNet(nn.Module):
    """Q-values of the five blocks for a batch of self-evaluation states (raw scores 0..3)."""

    def __init__(self, obs_dim: int = OBS_DIM, n_actions: int = N_ACTIONS, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden = obs_dim, n_actions, hidden
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.advantage = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))
        self.value = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        h = self.trunk((states.float() - NORM_CENTER) / NORM_SCALE)  # (B, H)
        advantage = self.advantage(h)  # (B, A)
        return self.value(h) + advantage - advantage.mean(dim=1, keepdim=True)  # (B, A)


class DuelingQNetwork(QNetwork):
    """SB3's QNetwork with the dueling head in place of its MLP (``net_arch`` is ignored)."""

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ) -> None:
        # Skip QNetwork.__init__: it would build (and waste) the default MLP.
        BasePolicy.__init__(
            self,
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        self.net_arch = [HIDDEN]
        self.activation_fn = nn.ReLU
        self.features_dim = features_dim
        self.q_net = DuelingQNet(features_dim, int(action_space.n))  # type: ignore[assignment]


class DuelingDQNPolicy(DQNPolicy):
    """SB3 DQN policy whose online and target networks are :class:`DuelingQNetwork`."""

    def make_q_net(self) -> DuelingQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return DuelingQNetwork(**net_args).to(self.device)
