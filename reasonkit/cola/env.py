"""``LayerPathEnv``: building a layer path for a problem, as a gymnasium environment.

The chain-of-layers search (arXiv 2507.07996) as a sequential decision problem, over the same
grammar and the same rewards as :mod:`.mcts`: an episode builds one path for one problem.

- observation (``Dict``): ``path`` — the layers chosen so far, each as layer + 1, zero-padded to the
  grammar's longest path (``MultiDiscrete``); ``cursor`` — the next layer to decide; ``problem`` —
  the problem's index;
- action (``Discrete(len(moves) + 1)``): one of :meth:`LayerGrammar.all_moves` (skip, keep or repeat
  the next k layers), or the last id, *stop* (keep the remaining layers). A move that is not legal
  in the state (past the last layer, or breaking a limit; :meth:`action_masks` lists the legal ones,
  as sb3-contrib's MaskablePPO expects) is taken as stop, with ``info["illegal"] = True``;
- reward: 0 until the episode ends; then 1 if the model's greedy answer under the finished path is
  correct, 0 if not, minus ``length_penalty * len(path) / layers``. Episodes end by stopping or when
  the cursor passes the last layer (``truncated`` is always False).

Rewards come from a :class:`~reasonkit.cola.scoring.PathScorer`, so a path the env or a search has
already scored for the problem is not decoded again.

    >>> env = LayerPathEnv(PathScorer(load_backend("builtin"), problems))      # doctest: +SKIP
    >>> obs, info = env.reset(seed=0); obs, reward, done, _, info = env.step(env.stop_action)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from reasonkit.cola.grammar import LayerGrammar, PathState
from reasonkit.cola.scoring import PathScorer

Observation = dict[str, Any]


class LayerPathEnv(gym.Env):
    """One episode builds one layer path for one problem (module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self, scorer: PathScorer, grammar: LayerGrammar | None = None, *, length_penalty: float = 0.1
    ) -> None:
        if not scorer.problems:
            raise ValueError("LayerPathEnv needs a scorer with at least one problem")
        if length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
        self.scorer = scorer
        self.grammar = grammar or LayerGrammar(scorer.num_layers)
        if self.grammar.num_layers != scorer.num_layers:
            raise ValueError(
                f"the grammar has {self.grammar.num_layers} layers but the model {scorer.num_layers}"
            )
        self.length_penalty = length_penalty
        self.moves = self.grammar.all_moves()
        self.stop_action = len(self.moves)
        layers, longest = self.grammar.num_layers, self.grammar.upper_length
        self.action_space = spaces.Discrete(len(self.moves) + 1)
        self.observation_space = spaces.Dict(
            {
                "path": spaces.MultiDiscrete(np.full(longest, layers + 1, dtype=np.int64)),
                "cursor": spaces.Discrete(layers + 1),
                "problem": spaces.Discrete(len(scorer.problems)),
            }
        )
        self.state = PathState()
        self.row = 0
        self._done = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"problem_index"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; the one option is 'problem_index'")
        n = len(self.scorer.problems)
        index = options.get("problem_index")
        self.row = int(self.np_random.integers(n)) if index is None else int(index)
        if not 0 <= self.row < n:
            raise ValueError(f"problem_index {self.row} is outside 0..{n - 1}")
        self.state, self._done = PathState(), False
        return self._observation(), {"problem_id": self.scorer.problems[self.row].id}

    def step(self, action: Any) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("call reset() before step(): the episode is over")
        action = _as_action(action, self.stop_action)
        legal = self.action_masks()
        illegal = not legal[action]
        if action != self.stop_action and not illegal:
            self.state = self.grammar.apply(self.state, self.moves[action])
            if not self.grammar.is_terminal(self.state):
                return self._observation(), 0.0, False, False, {"move": str(self.moves[action])}
        self._done = True
        path = self.grammar.complete(self.state)
        [outcome] = self.scorer.score(path, [self.row])
        reward = outcome.reward - self.length_penalty * len(path) / self.grammar.num_layers
        info = {
            "path": path,
            "length": len(path),
            "correct": outcome.correct,
            "answer": outcome.answer,
            "illegal": illegal,
            "problem_id": self.scorer.problems[self.row].id,
        }
        return self._observation(), float(reward), True, False, info

    def action_masks(self) -> np.ndarray:
        """Which actions are legal now (stop always is)."""
        legal = set(self.grammar.legal_moves(self.state))
        return np.array([m in legal for m in self.moves] + [True], dtype=bool)

    def _observation(self) -> Observation:
        path = np.zeros(self.grammar.upper_length, dtype=np.int64)
        path[: len(self.state.path)] = np.asarray(self.state.path, dtype=np.int64) + 1
        return {"path": path, "cursor": self.state.cursor, "problem": self.row}

    def render(self) -> None:
        return None


def _as_action(action: Any, stop: int) -> int:
    value = np.asarray(action)
    if (
        value.shape not in ((), (1,))
        or not np.issubdtype(value.dtype, np.integer)
        or not 0 <= int(value) <= stop
    ):
        raise ValueError(f"an action is one integer in 0..{stop} ({stop} = stop), got {action!r}")
    return int(value.reshape(()))
