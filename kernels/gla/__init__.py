"""Gated linear attention (GLA): fla-compatible ``chunk_gla`` / ``fused_recurrent_gla`` and a decode step.

Files: ``naive.py`` (the loop that defines the op), ``chunk.py`` + ``intra.py`` (torch, chunkwise),
``fused_recurrent.py`` (torch, loop over time), ``triton_*.py`` (GPU kernels), ``api.py`` (the
dispatching public functions), ``benchmark.py`` (cases for ``python -m reasonkit.kernels.bench``).
"""

from __future__ import annotations

from reasonkit.kernels.gla.api import chunk_gla, fused_recurrent_gla, gla_step
from reasonkit.kernels.gla.naive import naive_recurrent_gla

__all__ = ["chunk_gla", "fused_recurrent_gla", "gla_step", "naive_recurrent_gla"]
