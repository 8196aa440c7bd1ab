"""Backends: the LanguageModel protocol and its implementations (HF, OpenAI-compatible, cached, server).

The protocol and errors import eagerly (no torch); implementations resolve lazily on first use, so
``import reasonkit.backends`` stays cheap.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports
from reasonkit.backends.base import (
    CAPABILITIES,
    BackendError,
    CapabilityError,
    LanguageModel,
    require_capability,
    require_whitebox,
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

__all__ = [
    "CAPABILITIES",
    "BackendError",
    "CapabilityError",
    "LanguageModel",
    "require_capability",
    "require_whitebox",
    *_LAZY,
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
