"""The GLA Triton kernels compile for real GPUs, checked on a machine without one.

The interpreter runs kernels as numpy and hides what only the compiler enforces (tl.dot tiles of at
least 16, power-of-two blocks, dtype rules, shared memory). Here the host code runs forward and
backward at realistic sizes with every kernel launch intercepted; each launch's arguments become a
signature, and Triton compiles it ahead of time to a cubin for the target GPU with the ptxas that
ships in the Triton wheel. Shared memory is checked against the target's per-block limit.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

triton = pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("compiles real kernels; not under the interpreter", allow_module_level=True)

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402

from reasonkit.kernels.gla import triton_chunk_bwd, triton_chunk_fwd, triton_recurrent  # noqa: E402
from reasonkit.kernels.gla.triton_chunk import ChunkGLATriton  # noqa: E402
from reasonkit.kernels.gla.triton_chunk_fwd import TunedKernel  # noqa: E402
from reasonkit.kernels.gla.triton_recurrent import FusedRecurrentGLATriton  # noqa: E402

KERNEL_MODULES = (triton_chunk_fwd, triton_chunk_bwd, triton_recurrent)
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}  # opt-in shared memory per block, A100 / H100-H200
TYPE_NAMES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int32: "i32",
    torch.int64: "i64",
}


class LaunchRecorder:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args)`` records the call instead of running it."""

    def __init__(self, kernel: Any, launches: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> None:
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid: Any) -> Any:
        return lambda *args, **kwargs: self.launches.append((self.kernel, args, kwargs))


def record_launches(
    monkeypatch: pytest.MonkeyPatch, run: Any
) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    launches: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    for module in KERNEL_MODULES:
        for name in dir(module):
            if name.endswith("_kernel"):
                monkeypatch.setattr(module, name, LaunchRecorder(getattr(module, name), launches))
    run()
    return launches


def jit_function(kernel: Any) -> Any:
    """The @triton.jit function, also when an autotuner wraps it."""
    if isinstance(kernel, TunedKernel):
        return kernel.fixed
    return kernel.fn if isinstance(kernel, Autotuner) else kernel


def ast_source(kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ASTSource:
    kernel = jit_function(kernel)
    bound = dict(zip(kernel.arg_names, args)) | kwargs
    signature, constexprs = {}, {}
    for param in kernel.params:
        value = bound[param.name]
        if param.is_constexpr or value is None:
            signature[param.name], constexprs[param.name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[param.name] = "*" + TYPE_NAMES[value.dtype]
        elif isinstance(value, bool):
            signature[param.name] = "i1"
        elif isinstance(value, int):
            signature[param.name] = "i32" if abs(value) < 2**31 else "i64"
        else:
            signature[param.name] = "fp32"
    return ASTSource(fn=kernel, signature=signature, constexprs=constexprs)


def forward_backward(function: Any, dtype: torch.dtype, B: int, T: int, H: int, K: int, V: int) -> None:
    q, k, g = (torch.randn(B, T, H, K, dtype=dtype, requires_grad=True) for _ in range(3))
    v = torch.randn(B, T, H, V, dtype=dtype, requires_grad=True)
    h0 = torch.zeros(B, H, K, V, requires_grad=True)
    o, ht = function.apply(q, k, v, g, K**-0.5, h0, True)
    torch.autograd.backward([o, ht], [torch.ones_like(o), torch.ones_like(ht)])


def compile_all(
    monkeypatch: pytest.MonkeyPatch,
    function: Any,
    dtype: torch.dtype,
    arch: int,
    dims: tuple[int, ...],
    every_config: bool = False,
) -> None:
    """Compile every launch with Triton's default launch options, or with each autotuning config."""
    launches = record_launches(monkeypatch, lambda: forward_backward(function, dtype, *dims))
    assert len(launches) >= 2, "kernel launches were not recorded"
    target = GPUTarget("cuda", arch, 32)
    for kernel, args, kwargs in launches:
        configs = kernel.tuned.configs if every_config and isinstance(kernel, TunedKernel) else None
        options = (
            [{"num_warps": c.num_warps, "num_stages": c.num_stages} for c in configs] if configs else [{}]
        )
        for option in options:
            compiled = triton.compile(ast_source(kernel, args, kwargs), target=target, options=option)
            name = f"{jit_function(kernel).fn.__name__} {option}"
            assert "cubin" in compiled.asm, f"{name}: no cubin for sm_{arch}"
            shared = compiled.metadata.shared
            assert shared <= SHARED_LIMIT[arch], f"{name}: {shared} B shared memory"


@pytest.mark.parametrize(
    "function", [ChunkGLATriton, FusedRecurrentGLATriton], ids=["chunk", "fused_recurrent"]
)
def test_triton_kernels_compile_for_sm90_bf16(monkeypatch: pytest.MonkeyPatch, function: Any) -> None:
    compile_all(monkeypatch, function, torch.bfloat16, 90, (2, 300, 4, 128, 128))


@pytest.mark.slow
@pytest.mark.parametrize(
    "function", [ChunkGLATriton, FusedRecurrentGLATriton], ids=["chunk", "fused_recurrent"]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("dims", [(2, 300, 4, 128, 128), (1, 40, 2, 64, 256), (1, 17, 2, 60, 20)], ids=str)
def test_triton_kernels_compile_across_dtypes_and_targets(
    monkeypatch: pytest.MonkeyPatch, function: Any, dtype: torch.dtype, arch: int, dims: tuple[int, ...]
) -> None:
    compile_all(monkeypatch, function, dtype, arch, dims)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_every_autotuning_config_compiles_for_sm90(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype
) -> None:
    compile_all(monkeypatch, ChunkGLATriton, dtype, 90, (2, 300, 4, 128, 128), every_config=True)
