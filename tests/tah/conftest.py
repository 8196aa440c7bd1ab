"""Fixtures of the Think-at-Hard tests: a tiny built-in-family model directory, one per session."""

from __future__ import annotations

import pytest

from reasonkit.models.builtin.checkpoint import build_model, export_model
from reasonkit.models.builtin.config import TrainLMConfig


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A 2-layer GLA + attention model with the built-in tokenizer and compact pack (random weights)."""
    cfg = TrainLMConfig(
        hidden_size=32, num_layers=2, layer_types=("gla", "attn"), num_heads=2, num_kv_heads=1
    )
    directory = tmp_path_factory.mktemp("tiny") / "model"
    export_model(build_model(cfg), directory, {"prompt_pack": "compact", "kinds": ["arith"]})
    return directory
