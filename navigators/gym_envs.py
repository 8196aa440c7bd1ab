"""ThoughtEnv registered with gymnasium: ``gymnasium.make("reasonkit/ThoughtEnv-v0", ...)``.

Registration happens when :mod:`reasonkit.navigators` is imported; gymnasium can do that itself
through its module prefix, so with nothing imported first::

    >>> import gymnasium                                                                  # doctest: +SKIP
    >>> env = gymnasium.make("reasonkit.navigators:reasonkit/ThoughtEnv-v0")             # builtin model, arith
    >>> env = gymnasium.make("reasonkit/ThoughtEnv-v0", problems=problems, backend=lm)    # after the import

``make`` adds gymnasium's checks (the passive env checker, ``render_mode``, ``env.spec``); wrap the
result in ``RecordEpisodeStatistics`` or SB3's ``Monitor`` for episode returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium

from reasonkit.types import Problem

THOUGHT_ENV_ID = "reasonkit/ThoughtEnv-v0"


def make_thought_env(
    problems: Sequence[Problem] | None = None,
    backend: Any = "builtin",
    *,
    n_problems: int = 200,
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    """A ThoughtEnv; ``backend`` is a LanguageModel or a :func:`load_backend` spec (default: the
    built-in model), ``problems`` default to ``n_problems`` arith training problems drawn with ``seed``.
    Other keywords (``pack``, ``reward``, ``max_depth``, ``render_mode``) go to ThoughtEnv."""
    from reasonkit.navigators.env import ThoughtEnv

    if isinstance(backend, str):
        from reasonkit.backends.loading import load_backend

        backend = load_backend(backend)
    if problems is None:
        from reasonkit.tasks import arith

        problems = arith.generate(n_problems, split="train", seed=seed)
    return ThoughtEnv(problems, backend, **kwargs)


def register_envs() -> None:
    """Register reasonkit's environments with gymnasium (idempotent)."""
    if THOUGHT_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=THOUGHT_ENV_ID, entry_point="reasonkit.navigators.gym_envs:make_thought_env")
