"""Shared fixtures for the kernel tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def triton_interpreter_child() -> Callable[[str, str], str]:
    """Run the tests of ``test_file`` matching ``-k keyword`` in a child pytest with TRITON_INTERPRET=1.

    Triton picks the interpreter when a kernel module is imported, so kernels must be imported in a
    process that has the variable from the start; running them in this one would either fail (no
    GPU) or leak interpreted kernels into other tests. Fails with the child's output unless every
    selected test passed; returns that output.
    """

    def run(test_file: str, keyword: str) -> str:
        pytest.importorskip("triton")
        env = {**os.environ, "TRITON_INTERPRET": "1", "REASONKIT_KERNELS": ""}
        cmd = [sys.executable, "-m", "pytest", test_file, "-q", "-x", "-k", keyword, "-p", "no:cacheprovider"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        assert done.returncode == 0, f"interpreter run failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        assert " passed" in summary and "failed" not in summary, done.stdout[-3000:]
        return done.stdout

    return run
