"""Which implementation of an op runs: naive reference, torch, or Triton.

Default: Triton for CUDA tensors when Triton imports, torch otherwise. ``REASONKIT_KERNELS`` set to
``naive``, ``torch`` or ``triton`` forces one for every op (``triton`` on CPU tensors needs
``TRITON_INTERPRET=1``, which runs kernels through Triton's interpreter, slowly).
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

Impl = Literal["naive", "torch", "triton"]
IMPLS: tuple[str, ...] = ("naive", "torch", "triton")
ENV_VAR = "REASONKIT_KERNELS"


class KernelError(RuntimeError):
    """A kernel cannot run as asked (bad shapes, unavailable implementation)."""


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_impl(x: torch.Tensor, impl: str | None = None) -> Impl:
    """The implementation to run for an op whose main input is ``x``.

    ``impl`` (an explicit argument) wins over the environment variable, which wins over the default.
    """
    choice = impl or os.environ.get(ENV_VAR) or None
    if choice is None:
        return "triton" if x.is_cuda and triton_available() else "torch"
    if choice not in IMPLS:
        raise KernelError(f"{ENV_VAR}={choice!r} is not one of {IMPLS}; unset it or pick one of those")
    if choice == "triton":
        if not triton_available():
            raise KernelError(
                "the Triton implementation was asked for but triton is not installed; "
                "pip install 'reasonkit[triton]' or set REASONKIT_KERNELS=torch"
            )
        if not x.is_cuda and not triton_interpreting():
            raise KernelError(
                "the Triton implementation needs CUDA tensors; on CPU set TRITON_INTERPRET=1 "
                "(slow, for tests) or REASONKIT_KERNELS=torch"
            )
    return choice  # type: ignore[return-value]
