"""The strategy registry: strategy names the CLI and ``make_strategy`` accept.

    >>> from reasonkit.strategies import make_strategy
    >>> make_strategy("sc", n=5).name
    'sc5'

The strategies themselves live below the methods (:mod:`reasonkit.kit`: the protocol, budgets and
generation helpers, and the Direct / CoT / self-consistency baselines) and in the method packages;
this module names them by string, so importing it imports no method. Its names are re-exported here
for code written against ``reasonkit.strategies``.
"""

from __future__ import annotations

from typing import Any

from reasonkit.kit.base import (
    UNLIMITED,
    Budget,
    Strategy,
    batch_sampling,
    finish_traces,
    n_choices,
    resolve_pack,
    timed_generate,
)
from reasonkit.kit.baselines import CoT, Direct, SelfConsistency, majority_vote

__all__ = [
    "STRATEGIES",
    "UNLIMITED",
    "Budget",
    "CoT",
    "Direct",
    "SelfConsistency",
    "Strategy",
    "batch_sampling",
    "finish_traces",
    "majority_vote",
    "make_strategy",
    "n_choices",
    "resolve_pack",
    "strategy_factory",
    "strategy_options",
    "timed_generate",
]


#: strategy name -> "module:attribute" (methods register here; the controller never imports them eagerly)
STRATEGIES: dict[str, str] = {
    "direct": "reasonkit.kit.baselines:Direct",
    "cot": "reasonkit.kit.baselines:CoT",
    "sc": "reasonkit.kit.baselines:SelfConsistency",
    "rlot": "reasonkit.navigators.strategy:RLoT",
    "fixed": "reasonkit.navigators.strategy:FixedSequence",
}


def strategy_factory(name: str) -> Any:
    """The class (or factory) a strategy name stands for, imported on first use."""
    import importlib

    target = STRATEGIES.get(name)
    if target is None:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    module_name, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"strategy {name!r} is not available in this installation ({exc})") from exc


def strategy_options(name: str) -> type | None:
    """The options dataclass a strategy declares (``Options``; its fields become CLI flags), if any.
    An unknown name gives None here; building the strategy reports it."""
    if name not in STRATEGIES:
        return None
    options = getattr(strategy_factory(name), "Options", None)
    return options if isinstance(options, type) else None


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name (``direct``, ``cot``, ``sc`` and those methods register)."""
    factory = strategy_factory(name)
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return factory(**options)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r} does not take these options {sorted(options)}: {exc}") from exc
