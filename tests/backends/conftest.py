"""Fixtures for backend tests: tiny real models from tests/tiny_models.py, single-threaded torch.

Torch runs single-threaded here: tiny models on a shared 2-core machine are >10x faster without
intra-op threads fighting each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import CHAT_TEMPLATE, build_model, build_tokenizer
from transformers import PreTrainedTokenizerFast


@pytest.fixture(scope="package", autouse=True)
def _single_thread_torch():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture(scope="session")
def chat_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(CHAT_TEMPLATE)


@pytest.fixture(scope="session")
def llama(tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    return build_model(tokenizer, "llama")


@pytest.fixture(scope="session")
def chat_llama(chat_tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    return build_model(chat_tokenizer, "llama", seed=2)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: PreTrainedTokenizerFast) -> Path:
    """A saved tiny Qwen2 with a chat-template tokenizer, loadable by path."""
    path = tmp_path_factory.mktemp("tiny-qwen2")
    build_model(chat_tokenizer, "qwen2", seed=1).save_pretrained(path)
    chat_tokenizer.save_pretrained(path)
    return path
