"""OpenAIBackend's own limits against a misbehaving server on loopback: a total deadline that a
Retry-After cannot stretch, and a cap on the reply size."""

from __future__ import annotations

import json
import time

import pytest
from fault_server import Action, FaultServer, completion_reply

from reasonkit.backends.base import BackendError
from reasonkit.backends.openai import OpenAIBackend
from reasonkit.types import SamplingParams

PARAMS = SamplingParams(max_new_tokens=4)


@pytest.mark.timeout(60)
def test_a_long_retry_after_cannot_outlast_the_deadline():
    """Before: Retry-After: 600 slept 120 s per attempt (600 s over 5 retries)."""
    with FaultServer([Action(429, b'{"error": {"message": "busy"}}', {"Retry-After": "600"})]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=5, timeout=5, deadline=3)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"Retry-After.*deadline of 3 s.*busy"):
            lm.generate(["x"], PARAMS)
        assert time.monotonic() - started < 2.0  # failed at once: the wait could not fit
        assert len(srv.requests) == 1


@pytest.mark.timeout(60)
def test_the_deadline_bounds_hanging_attempts_too():
    with FaultServer([Action(hang=30)]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=10, timeout=20, backoff=0.01, deadline=1.5)
        started = time.monotonic()
        with pytest.raises(BackendError):
            lm.generate(["x"], PARAMS)
        assert time.monotonic() - started < 4.0


def test_the_default_deadline_follows_timeout_and_retries():
    assert OpenAIBackend("http://127.0.0.1:9/v1", "m", timeout=10, max_retries=2).deadline == 90.0
    with pytest.raises(ValueError, match="deadline"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", deadline=0)


def test_a_reply_larger_than_the_cap_is_an_error():
    """Before: a 200 MB reply was read whole."""
    big = json.dumps({**completion_reply({}), "padding": "x" * 3_000_000}).encode()
    with FaultServer([Action(200, big)]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=0, max_reply_bytes=1_000_000)
        with pytest.raises(BackendError, match=r"more than this client accepts \(max_reply_bytes=1000000\)"):
            lm.generate(["x"], PARAMS)
        ok = OpenAIBackend(srv.url, "m", max_retries=0, max_reply_bytes=4_000_000)
        assert ok.generate(["x"], PARAMS)[0][0].text == "ok0"
