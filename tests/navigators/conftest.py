"""Fixtures for navigator tests (the models themselves live in navigator_helpers.py)."""

from __future__ import annotations

import pytest
from navigator_helpers import ScriptedArithLM, tiny_llama, tiny_tokenizer


@pytest.fixture
def scripted() -> ScriptedArithLM:
    return ScriptedArithLM()


@pytest.fixture(scope="session")
def tiny_hf_backend():
    from reasonkit.backends.hf import HFBackend

    tokenizer = tiny_tokenizer()
    return HFBackend(tiny_llama(tokenizer), tokenizer, name="tiny-llama", prompt_pack="compact")
