"""Gated linear attention (GLA): fla-compatible ``chunk_gla`` / ``fused_recurrent_gla`` and a decode step.

Files: ``naive.py`` (the loop that defines the op), ``chunk.py`` + ``intra.py`` (torch, chunkwise),
``fused_recurrent.py`` (torch, loop over time), ``triton_*.py`` (GPU kernels), ``api.py`` (the
dispatching public functions), ``benchmark.py`` (cases for ``python -m reasonkit.kernels.bench``).
"""

from __future__ import annotations

from typing import Any

from reasonkit.kernels.gla.api import chunk_gla, fused_recurrent_gla, gla_step
from reasonkit.kernels.gla.naive import naive_recurrent_gla

__all__ = ["bench_cases", "chunk_gla", "fused_recurrent_gla", "gla_step", "naive_recurrent_gla"]


def bench_cases(device: str, quick: bool = False) -> list[Any]:
    """Benchmark cases for the GLA ops on ``device`` (see :mod:`reasonkit.kernels.bench`)."""
    from reasonkit.kernels.gla.benchmark import bench_cases as cases

    return cases(device, quick=quick)
