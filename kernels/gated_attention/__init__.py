"""Gated softmax attention (arXiv 2505.06708): o = SDPA(q, k, v) ⊙ sigmoid(gate), layout [B, T, H, D].

- :func:`gated_attention` — full op, grouped-query heads, bottom-right causal mask, key padding.
- :func:`gated_attention_step` — decode against a KV cache that grows by concatenation.
- :func:`bench_cases` — benchmark cases for ``python -m reasonkit.kernels.bench``.

Implementations: ``naive.py`` (the defining loop), ``sdpa.py`` (PyTorch SDPA + gate, any device),
``flash.py`` (Triton flash-attention forward and backward with the gate fused in).
"""

from reasonkit.kernels.gated_attention.benchmark import bench_cases
from reasonkit.kernels.gated_attention.op import gated_attention, gated_attention_step

__all__ = ["bench_cases", "gated_attention", "gated_attention_step"]
