"""The dueling network and the double-DQN learner, against hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from navigator_helpers import ScriptedArithLM
from stable_baselines3.common.logger import configure
from torch import nn

from reasonkit.navigators.dqn import DuelingDoubleDQN, double_q_targets
from reasonkit.navigators.env import ThoughtVecEnv
from reasonkit.navigators.network import DuelingQNet
from reasonkit.tasks import arith


def test_dueling_network_has_the_papers_shape_and_2566_parameters():
    net = DuelingQNet()
    assert sum(p.numel() for p in net.parameters()) == 2566
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["trunk.0.weight"] == (32, 7)
    assert shapes["advantage.0.weight"] == (32, 32) and shapes["advantage.2.weight"] == (5, 32)
    assert shapes["value.0.weight"] == (32, 32) and shapes["value.2.weight"] == (1, 32)


def test_dueling_forward_matches_a_hand_written_reference():
    torch.manual_seed(0)
    net = DuelingQNet()
    states = torch.tensor([[0, 1, 2, 3, 3, 2, 1], [3, 3, 3, 3, 3, 3, 3]], dtype=torch.float32)
    x = (states - 1.5) / 1.5  # the paper's normalisation: 0..3 -> -1..1
    h = torch.relu(x @ net.trunk[0].weight.T + net.trunk[0].bias)
    adv = torch.relu(h @ net.advantage[0].weight.T + net.advantage[0].bias) @ net.advantage[2].weight.T
    adv = adv + net.advantage[2].bias
    val = (
        torch.relu(h @ net.value[0].weight.T + net.value[0].bias) @ net.value[2].weight.T + net.value[2].bias
    )
    expected = val + adv - adv.mean(dim=1, keepdim=True)
    torch.testing.assert_close(net(states), expected)


class Table(nn.Module):
    """Q(s) = s @ W: a network whose outputs are written down by hand."""

    def __init__(self, rows: list[list[float]]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(rows))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.w


def test_double_q_target_against_a_hand_computed_example():
    online = Table([[1.0, 5.0, 2.0], [4.0, 0.0, 3.0]])  # argmax: action 1 for s'=e0, action 0 for s'=e1
    target = Table([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]])
    next_states = torch.eye(2)
    rewards = torch.tensor([0.5, 1.0])
    dones = torch.tensor([0.0, 1.0])
    got = double_q_targets(online, target, rewards, next_states, dones, gamma=0.9)
    # s'=e0: r + 0.9 * Q_target(e0, argmax Q_online = 1) = 0.5 + 0.9 * 20 = 18.5 (vanilla DQN: 0.5 + 0.9 * 30)
    # s'=e1 is terminal: just r = 1.0
    torch.testing.assert_close(got, torch.tensor([[18.5], [1.0]]))


@pytest.fixture
def model():
    problems = arith.generate(8, split="train", seed=0, n_ops=[5, 6])
    env = ThoughtVecEnv(problems, ScriptedArithLM(), n_envs=4, seed=0)
    return DuelingDoubleDQN(env=env, seed=0, buffer_size=100, batch_size=8)


def test_the_papers_defaults_and_schedules(model):
    fresh = DuelingDoubleDQN(env=model.env)
    assert (fresh.learning_rate, fresh.gamma, fresh.batch_size, fresh.buffer_size) == (0.01, 0.9, 64, 500)
    assert fresh.target_update_interval == 50 and fresh.learning_starts == 499
    assert isinstance(fresh.policy.optimizer, torch.optim.Adam)
    assert fresh.epsilon_at(0) == 1.0 and fresh.epsilon_at(1) == pytest.approx(0.9995)
    assert fresh.epsilon_at(2000) == pytest.approx(0.9995**2000)
    assert fresh.learning_rate_at(999) == 0.01 and fresh.learning_rate_at(1000) == 0.005
    assert fresh.learning_rate_at(2500) == 0.0025


def _fill(model, obs, action, reward, next_obs, done, n):
    buffer = model.replay_buffer
    for _ in range(n // model.n_envs):
        buffer.add(
            np.tile(obs, (model.n_envs, 1)), np.tile(next_obs, (model.n_envs, 1)),
            np.full((model.n_envs, 1), action), np.full(model.n_envs, reward),
            np.full(model.n_envs, done), [{} for _ in range(model.n_envs)],
        )  # fmt: skip


def test_train_step_minimises_mse_to_the_double_q_target(model):
    model.set_logger(configure(None, []))
    with torch.no_grad():  # make the target network differ from the online one
        for p in model.q_net_target.parameters():
            p.add_(torch.randn_like(p))
    s = np.array([3, 3, 3, 2, 3, 2, 3], dtype=np.float32)
    s2 = np.array([3, 3, 1, 1, 3, 3, 3], dtype=np.float32)
    _fill(model, s, action=2, reward=0.25, next_obs=s2, done=0.0, n=16)
    with torch.no_grad():
        q = model.q_net.q_net(torch.tensor(s)[None])[0, 2]
        best = model.q_net.q_net(torch.tensor(s2)[None]).argmax()
        target = 0.25 + 0.9 * model.q_net_target.q_net(torch.tensor(s2)[None])[0, best]
    before = [p.clone() for p in model.q_net.parameters()]
    model.train(gradient_steps=1, batch_size=8)
    # Every sample is the same transition, so the loss is exactly (Q(s, a) - target)^2.
    assert model.logger.name_to_value["train/loss"] == pytest.approx(float((q - target) ** 2), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.q_net.parameters()))


def test_target_network_syncs_every_50_updates(model):
    model.set_logger(configure(None, []))
    _fill(model, np.zeros(7, np.float32), 0, 1.0, np.ones(7, np.float32), 0.0, n=16)
    model.train(gradient_steps=49, batch_size=8)
    online = model.q_net.state_dict()
    assert any(not torch.equal(online[k], v) for k, v in model.q_net_target.state_dict().items())
    model.train(gradient_steps=1, batch_size=8)
    assert all(
        torch.equal(model.q_net.state_dict()[k], v) for k, v in model.q_net_target.state_dict().items()
    )


def test_replay_stores_the_action_that_ran(model):
    """Refine chosen at depth 0 runs reason; the replay buffer must learn from reason."""
    env = model.env
    model._last_obs = env.reset()
    env.step(np.array([3, 3, 3, 3]))  # refine at depth 0 everywhere
    _, _, _, infos = env.step(np.array([3, 3, 3, 3]))  # now depth 1: refine stays refine
    assert [i["action"] for i in infos] == [3, 3, 3, 3]
    model._last_obs = env.reset()
    obs, rewards, dones, infos = env.step(np.array([3, 3, 3, 3]))
    model._store_transition(model.replay_buffer, np.array([3, 3, 3, 3]), obs, rewards, dones, infos)
    assert model.replay_buffer.actions[model.replay_buffer.pos - 1].ravel().tolist() == [0, 0, 0, 0]


def test_exploration_is_per_env(model):
    model._last_obs = model.env.reset()
    model.num_timesteps = 1400  # eps = 0.9995 ** 1401 ~ 0.5: a per-env coin mixes greedy and random
    greedy, _ = model.policy.predict(model._last_obs, deterministic=True)
    mixed = 0
    for _ in range(50):
        actions, stored = model._sample_action(0, n_envs=4)
        assert np.array_equal(actions, stored) and actions.shape == (4,)
        explored = actions != greedy
        mixed += int(explored.any() and not explored.all())
    assert mixed > 0, "with one coin per vector step, all envs would explore together"
    assert model.exploration_rate == pytest.approx(0.9995**1401)
