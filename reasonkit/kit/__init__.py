"""The strategy kit: the Strategy protocol, budgets, generation helpers and the baseline strategies.

It sits below the methods (navigators, workspaces, cola, tah, hrpo), which build on it; the registry
that names strategies for the CLI is :mod:`reasonkit.strategies`, above them.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "Strategy": "reasonkit.kit.base",
    "Budget": "reasonkit.kit.base",
    "UNLIMITED": "reasonkit.kit.base",
    "resolve_pack": "reasonkit.kit.base",
    "timed_generate": "reasonkit.kit.base",
    "batch_sampling": "reasonkit.kit.base",
    "n_choices": "reasonkit.kit.base",
    "finish_traces": "reasonkit.kit.base",
    "Direct": "reasonkit.kit.baselines",
    "CoT": "reasonkit.kit.baselines",
    "SelfConsistency": "reasonkit.kit.baselines",
    "majority_vote": "reasonkit.kit.baselines",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
