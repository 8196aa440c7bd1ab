"""Backends: the LanguageModel protocol and its implementations (HF, OpenAI-compatible, cached)."""

from reasonkit.backends.base import (
    CAPABILITIES,
    BackendError,
    CapabilityError,
    LanguageModel,
    require_capability,
)

__all__ = ["CAPABILITIES", "BackendError", "CapabilityError", "LanguageModel", "require_capability"]
