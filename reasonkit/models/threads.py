"""How many CPU threads torch uses for a local model (every model-running command's ``--threads``).

A small model's matmuls are too small to split: on a machine whose cores are busy, torch's default
(one thread per core) makes the threads wait on each other, and the built-in 3.5M-parameter model
generated 10-40x slower than on one thread (BENCHMARKS.md, "CPU threads"). So ``threads=None``
means: one thread when the backend runs a model of at most :data:`SMALL_MODEL_PARAMETERS` on the
CPU, torch's own choice otherwise (a larger model's matmuls do gain from several cores). An explicit
count always wins. Servers (OpenAI-compatible backends) run no local model and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Models up to this many parameters run on one CPU thread unless told otherwise.
SMALL_MODEL_PARAMETERS = 50_000_000


def local_model(backend: Any) -> Any | None:
    """The torch module behind ``backend`` (through wrappers such as CachedBackend), else None; a torch
    module is its own model."""
    seen = 0
    while backend is not None and seen < 8:
        if hasattr(backend, "parameters"):
            return backend
        model = getattr(backend, "model", None)
        if model is not None and hasattr(model, "parameters"):
            return model
        backend, seen = getattr(backend, "inner", None), seen + 1
    return None


def auto_threads(backend: Any) -> int | None:
    """The thread count ``threads=None`` picks for ``backend``: 1 for a small model on the CPU, else None."""
    model = local_model(backend)
    if model is None:
        return None
    params = list(model.parameters())
    if not params or params[0].device.type != "cpu":
        return None
    return 1 if sum(p.numel() for p in params) <= SMALL_MODEL_PARAMETERS else None


def check_threads(threads: int | None) -> None:
    """Validate a ``--threads`` value (``None``: automatic)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(
            f"--threads must be >= 1 (a whole number; leave it out for automatic), got {threads!r}"
        )


def set_threads(threads: int | None, backend: Any = None) -> int:
    """Set torch's intra-op CPU threads: ``threads``, else :func:`auto_threads`; returns the count in use."""
    import torch

    check_threads(threads)
    count = threads if threads is not None else auto_threads(backend)
    if count is not None and count != torch.get_num_threads():
        torch.set_num_threads(count)
    return torch.get_num_threads()


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op threads at ``count`` (None: as they are), then restore them.

    Backends wrap each call in this, so a small model runs on one thread in any Python program, not
    only under the ``reasonkit`` commands (which also set the process-wide count).
    """
    if count is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if previous != count:
            torch.set_num_threads(previous)


THREADS_HELP = (
    "torch CPU threads for a local model (default: 1 for a model of at most 50M parameters on the CPU, "
    "which runs fastest on one thread and slows down badly when threads contend; torch's choice otherwise)"
)
