"""RL-of-Thoughts navigators (arXiv 2505.14140): a tiny RL policy that picks the next logic block.

At inference time an LLM reasons in *logic blocks* — reason one step, decompose, debate, refine,
terminate — and after each block scores its own latest step on seven aspects. A 2,566-parameter
dueling double-DQN, the *navigator*, reads those seven scores and chooses the next block.

    $ reasonkit train-navigator                       # the built-in model on arith, a few minutes on CPU
    $ reasonkit eval --bench arith --model builtin --strategy rlot --navigator builtin-arith

    >>> from reasonkit.navigators import Navigator, RLoT               # doctest: +SKIP
    >>> traces = RLoT("builtin-arith").solve(problems, backend)       # doctest: +SKIP

Modules: ``blocks`` (the five blocks and transition rules), ``state`` (self-evaluation),
``episode`` (one episode; the batching driver), ``rewards`` / ``prm`` (step rewards, process reward
models), ``env`` (ThoughtEnv, ThoughtVecEnv), ``network`` / ``dqn`` (dueling double DQN on
stable-baselines3), ``navigator`` (the saved file), ``strategy`` (RLoT, FixedSequence), ``train``
(``reasonkit train-navigator``), ``compare`` (the results table). docs/navigators.md has the details.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

if __name__ != "reasonkit.navigators":  # imported as bare `navigators` from the clone root
    from reasonkit._shadow import defer_to_installed

    defer_to_installed(__name__, __file__)

_LAZY: dict[str, str] = {
    "BLOCKS": "reasonkit.packs",
    "MAX_DEPTH": "reasonkit.navigators.blocks",
    "effective_block": "reasonkit.navigators.blocks",
    "Episode": "reasonkit.navigators.episode",
    "run_programs": "reasonkit.navigators.episode",
    "ThoughtEnv": "reasonkit.navigators.env",
    "ThoughtVecEnv": "reasonkit.navigators.env",
    "DuelingQNet": "reasonkit.navigators.network",
    "DuelingDQNPolicy": "reasonkit.navigators.network",
    "DuelingDoubleDQN": "reasonkit.navigators.dqn",
    "Navigator": "reasonkit.navigators.navigator",
    "NavigatorFileError": "reasonkit.navigators.navigator",
    "RLoT": "reasonkit.navigators.strategy",
    "FixedSequence": "reasonkit.navigators.strategy",
    "make_reward": "reasonkit.navigators.rewards",
    "MathShepherdPRM": "reasonkit.navigators.prm",
    "QwenMathPRM": "reasonkit.navigators.prm",
    "load_prm": "reasonkit.navigators.prm",
    "TrainNavigatorConfig": "reasonkit.navigators.train",
    "train_navigator": "reasonkit.navigators.train",
    "train_navigator_command": "reasonkit.navigators.train",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)


def _register_gymnasium_envs() -> None:
    """``gymnasium.make("reasonkit/ThoughtEnv-v0")`` after ``import reasonkit.navigators`` (gym_envs.py)."""
    from reasonkit.navigators.gym_envs import register_envs

    register_envs()


if __name__ == "reasonkit.navigators":
    _register_gymnasium_envs()
