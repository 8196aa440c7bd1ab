"""Recurrent and gated kernels: gated linear attention, gated softmax attention, sLSTM / LSTM.

Each op lives in its own folder beside a ``naive.py`` reference (a plain loop that defines it), a
torch implementation for any device, and a Triton implementation for GPUs. The public functions
below dispatch by the input's device; set ``REASONKIT_KERNELS=naive|torch|triton`` to force one
(see :mod:`reasonkit.kernels.dispatch`). Names resolve lazily so ``import reasonkit.kernels`` does
not import Triton.

Shapes follow flash-linear-attention (fla) for GLA, so either library can be swapped in:
q, k, g: [B, T, H, K]; v: [B, T, H, V]; recurrent state [N, H, K, V] in float32.
"""

from __future__ import annotations

import importlib
from typing import Any

if __name__ != "reasonkit.kernels":  # imported as bare `kernels` from the clone root
    from reasonkit._shadow import defer_to_installed

    defer_to_installed(__name__, __file__)

_LAZY: dict[str, str] = {
    # gated linear attention
    "chunk_gla": "reasonkit.kernels.gla",
    "fused_recurrent_gla": "reasonkit.kernels.gla",
    "gla_step": "reasonkit.kernels.gla",
    # gated softmax attention
    "gated_attention": "reasonkit.kernels.gated_attention",
    "gated_attention_step": "reasonkit.kernels.gated_attention",
    # head-wise recurrences (FlashRNN style)
    "slstm": "reasonkit.kernels.rnn",
    "lstm": "reasonkit.kernels.rnn",
    "slstm_step": "reasonkit.kernels.rnn",
    "lstm_step": "reasonkit.kernels.rnn",
    # dispatch
    "resolve_impl": "reasonkit.kernels.dispatch",
    "KernelError": "reasonkit.kernels.dispatch",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reasonkit.kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
