"""Lazy package exports: ``from reasonkit import X`` imports X's module on first use only.

Package ``__init__`` files list ``{name: module}`` and call :func:`lazy_exports`, so importing a
package stays cheap (no torch or transformers until something needs them)::

    __getattr__, __dir__ = lazy_exports(globals(), {"HFBackend": "reasonkit.backends.hf"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], lazy: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` (PEP 562) serving ``lazy`` in ``namespace``."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # cached: the next access is a plain global lookup
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__
