"""Flags every model-running command shares: the model, CPU threads and the HTTP client's patience.

Command configs (``reasonkit eval``, ``solve``, ``serve``, ``train-navigator`` …) inherit
:class:`BackendOptions`, so each has ``--model``, ``--threads``, ``--request-timeout`` and
``--max-retries`` with one help text and one validation, and loads its backend through
:meth:`BackendOptions.load`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reasonkit.models.threads import THREADS_HELP, check_threads

MODEL_HELP = (
    "the model: builtin (v3; builtin-v1 the first version), an HF id or local directory, an OpenAI-compatible server "
    "(openai:http://HOST:PORT/v1#MODEL, or http://HOST:PORT/v1 for the one it serves), or a changed model "
    "(layers:0,1,1,2-7@builtin …; docs/backends.md)"
)
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5


@dataclass
class BackendOptions:
    """Mixed into command configs; subclasses call ``super().__post_init__()`` from their own."""

    model: str = field(default="builtin", metadata={"help": MODEL_HELP})
    threads: int | None = field(default=None, metadata={"help": THREADS_HELP})
    request_timeout: float = field(
        default=DEFAULT_REQUEST_TIMEOUT,
        metadata={"help": "seconds to wait for one HTTP request to a server backend before retrying it"},
    )
    max_retries: int = field(
        default=DEFAULT_MAX_RETRIES,
        metadata={"help": "retries of a failed HTTP request (connection errors, timeouts, 429, 5xx)"},
    )

    def __post_init__(self) -> None:
        check_threads(self.threads)
        if not self.request_timeout > 0:
            raise ValueError(f"--request-timeout must be > 0 seconds, got {self.request_timeout}")
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"--max-retries must be a whole number >= 0, got {self.max_retries!r}")

    def backend_kwargs(
        self, spec: str, local: dict[str, Any] | None = None, server: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Constructor keywords for the backend ``spec`` names: ``local`` for a local model; for a
        server, the HTTP client's patience plus ``server``."""
        from reasonkit.backends.loading import spec_kind

        if spec_kind(spec) == "openai":
            return {"timeout": self.request_timeout, "max_retries": self.max_retries, **(server or {})}
        return dict(local or {})

    def load(
        self, spec: str, local: dict[str, Any] | None = None, server: dict[str, Any] | None = None
    ) -> Any:
        """Load the backend ``spec`` names and set torch's threads for it (:mod:`.threads`)."""
        from reasonkit.backends.loading import load_backend
        from reasonkit.models.threads import set_threads

        local = {"threads": self.threads, **(local or {})}
        backend = load_backend(spec, **self.backend_kwargs(spec, local, server))
        set_threads(self.threads, backend)
        return backend
