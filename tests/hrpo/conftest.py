"""Fixtures of the HRPO tests (helpers live in hrpo_helpers.py)."""

from __future__ import annotations

import pytest
from tiny_models import build_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()
