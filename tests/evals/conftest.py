"""Fixtures for the evaluation harness: the shared benchmark data (skipped when absent), a tiny
random chat model saved to disk (loadable by path, as a user's model is), single-threaded torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasonkit.evals.loaders import REPO_ROOT

DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "math500" / "test.jsonl").is_file():
        pytest.skip(f"benchmark data not found at {DATA} (the shared/data folder next to the repository)")
    return DATA


@pytest.fixture(scope="session")
def gpqa_zip(data_dir: Path) -> Path:
    path = data_dir / "gpqa" / "dataset.zip"
    if not path.is_file():
        pytest.skip(f"GPQA archive not found at {path}")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny Llama with a test-built BPE tokenizer and a chat template, saved to disk."""
    import torch
    from tiny_models import CHAT_TEMPLATE, build_model, build_tokenizer

    torch.set_num_threads(1)  # tiny models on 2 shared cores run fastest single-threaded
    tokenizer = build_tokenizer(CHAT_TEMPLATE)
    path = tmp_path_factory.mktemp("tiny-llama")
    model = build_model(tokenizer, "llama", seed=0)
    # Benchmark prompts run to ~1000 tokens; Llama's rotary positions have no table to outgrow.
    model.config.max_position_embeddings = 4096
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
