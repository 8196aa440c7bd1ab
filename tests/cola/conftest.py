"""Fixtures for the chain-of-layers tests: the shipped model and a few arith problems."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def builtin():
    from reasonkit import load_backend

    return load_backend("builtin")


@pytest.fixture(scope="session")
def arith_problems():
    from reasonkit.cola.search import ordered_problems

    return ordered_problems("arith", None, None, 0)[:16]
