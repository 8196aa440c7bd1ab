"""Suite-wide test settings.

Torch runs single-threaded: the suite's models are tiny, and on a 2-core machine intra-op threads
fighting each other make a tiny model's generate an order of magnitude slower.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _single_thread_torch():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
