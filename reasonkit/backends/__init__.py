"""Backends: the LanguageModel protocol and its implementations (HF, OpenAI-compatible, cached, server).

The protocol and errors import eagerly (no torch); implementations resolve lazily on first use, so
``import reasonkit.backends`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from reasonkit.backends.base import (
    CAPABILITIES,
    BackendError,
    CapabilityError,
    LanguageModel,
    require_capability,
)

_LAZY: dict[str, str] = {
    "HFBackend": "reasonkit.backends.hf",
    "OpenAIBackend": "reasonkit.backends.openai",
    "CachedBackend": "reasonkit.backends.cached",
    "load_backend": "reasonkit.backends.loading",
    "SpecError": "reasonkit.backends.loading",
    "start_server": "reasonkit.backends.server",
    "OpenAIServer": "reasonkit.backends.server",
}

__all__ = ["CAPABILITIES", "BackendError", "CapabilityError", "LanguageModel", "require_capability", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reasonkit.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
