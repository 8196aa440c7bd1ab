"""CachedBackend over a real HFBackend: hits, misses, only misses forwarded, disk persistence, threads."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Sequence

import pytest
import torch

from reasonkit.backends.base import BackendError, CapabilityError, LanguageModel
from reasonkit.backends.cached import CachedBackend
from reasonkit.backends.hf import HFBackend
from reasonkit.backends.openai import OpenAIBackend
from reasonkit.types import Completion, Prompt, SamplingParams

GREEDY = SamplingParams(max_new_tokens=6)
CHAT = [{"role": "user", "content": "hello"}]


class RecordingHF(HFBackend):
    """A real HFBackend that also records what reaches it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[list[Prompt]] = []
        self.scored: list[list[str]] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.seen.append(list(prompts))
        return super().generate(prompts, params)

    def loglikelihood(self, prefix: Prompt, continuations: Sequence[str]) -> list[float]:
        self.scored.append(list(continuations))
        return super().loglikelihood(prefix, continuations)


@pytest.fixture
def inner(chat_llama, chat_tokenizer) -> RecordingHF:
    return RecordingHF(chat_llama, chat_tokenizer, name="tiny")


def test_hits_misses_and_only_misses_forwarded(inner):
    cache = CachedBackend(inner)
    first = cache.generate(["hello", "The quick", CHAT], GREEDY)
    assert (cache.hits, cache.misses) == (0, 3)
    second = cache.generate(["The quick", "7 * 6", CHAT, "hello"], GREEDY)
    assert (cache.hits, cache.misses) == (3, 4)
    assert inner.seen == [["hello", "The quick", CHAT], ["7 * 6"]]
    assert second == [first[1], inner.generate(["7 * 6"], GREEDY)[0], first[2], first[0]]
    assert first == inner.generate(["hello", "The quick", CHAT], GREEDY)


def test_duplicates_in_one_batch_are_computed_once(inner):
    cache = CachedBackend(inner)
    out = cache.generate(["hello", "hello", "hi", "hello"], GREEDY)
    assert inner.seen == [["hello", "hi"]]
    assert out[0] == out[1] == out[3]
    assert (cache.hits, cache.misses) == (0, 4)  # counted per prompt asked, not per prompt computed


def test_key_covers_every_param_and_seeded_sampling_is_cached(inner):
    cache = CachedBackend(inner)
    cache.generate(["hello"], GREEDY)
    cache.generate(["hello"], SamplingParams(max_new_tokens=7))
    cache.generate(["hello"], SamplingParams(max_new_tokens=6, stop=("x",)))
    assert len(inner.seen) == 3 and cache.hits == 0
    seeded = SamplingParams(max_new_tokens=6, temperature=1.2, n=2, seed=4)
    a = cache.generate(["hello"], seeded)
    b = cache.generate(["hello"], seeded)
    assert a == b and cache.hits == 1 and len(inner.seen) == 4


def test_unseeded_sampling_passes_through(inner):
    cache = CachedBackend(inner)
    params = SamplingParams(max_new_tokens=4, temperature=1.0)
    cache.generate(["hello", "hi"], params)
    cache.generate(["hello", "hi"], params)
    assert len(inner.seen) == 2 and (cache.hits, cache.misses, cache.passthrough) == (0, 0, 4)


def test_disk_persistence_across_instances(tmp_path, inner, chat_llama, chat_tokenizer):
    path = tmp_path / "sub" / "cache.sqlite"
    with CachedBackend(inner, path=path) as cache:
        first = cache.generate(["hello", CHAT], GREEDY)
        scores = cache.loglikelihood("2 + 3 =", [" 5", " 6"])
    assert inner.model is None  # the cache owns what it wraps: closing it closed `inner`
    fresh = RecordingHF(chat_llama, chat_tokenizer, name="tiny")
    again = CachedBackend(fresh, path=path)
    assert again.generate(["hello", CHAT], GREEDY) == first
    assert again.loglikelihood("2 + 3 =", [" 6", " 5"]) == [scores[1], scores[0]]
    assert fresh.seen == [] and fresh.scored == [] and again.hits == 4
    other = CachedBackend(RecordingHF(chat_llama, chat_tokenizer, name="another-model"), path=path)
    other.generate(["hello"], GREEDY)
    assert other.misses == 1  # the backend name is part of the key


def test_loglikelihood_is_memoised_per_continuation(inner):
    cache = CachedBackend(inner)
    a = cache.loglikelihood("Question:", [" what", " is"])
    b = cache.loglikelihood("Question:", [" is", " 2"])
    assert inner.scored == [[" what", " is"], [" 2"]]
    assert b[0] == a[1] and b[1] == pytest.approx(inner.loglikelihood("Question:", [" 2"])[0])


def test_attributes_delegate_to_the_inner_backend(inner):
    cache = CachedBackend(inner)
    assert isinstance(cache, LanguageModel)
    assert cache.name == "tiny" and cache.capabilities == inner.capabilities
    assert cache.model is inner.model and cache.tokenizer is inner.tokenizer
    assert cache.prompt_pack == "natural" and cache.render(CHAT) == inner.render(CHAT)
    with pytest.raises(AttributeError):
        cache.no_such_attribute  # noqa: B018


def test_black_box_inner_has_no_loglikelihood():
    cache = CachedBackend(OpenAIBackend("http://127.0.0.1:9/v1", "m"))
    assert cache.capabilities == {"chat"}
    with pytest.raises(CapabilityError, match="loglikelihood"):
        cache.loglikelihood("a", ["b"])


def test_threads_share_one_cache_file(tmp_path, inner):
    cache = CachedBackend(inner, path=tmp_path / "c.sqlite")
    prompts = ["hello", "hi", "The quick", "7 * 6", "Question:"]
    expected = inner.generate(prompts, GREEDY)
    results: list[list[list[Completion]]] = []
    errors: list[BaseException] = []

    def worker(shift: int) -> None:
        try:
            order = prompts[shift:] + prompts[:shift]
            got = cache.generate(order, GREEDY)
            results.append(got[-shift:] + got[:-shift] if shift else got)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(r == expected for r in results)
    rows = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    assert rows == len(prompts)


def test_unusable_cache_file_is_a_clear_error(tmp_path, inner):
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BackendError, match=r"cannot use .*not-a-db.sqlite as a cache file"):
        CachedBackend(inner, path=bad)


def test_checkpoint_retrained_in_place_misses(tmp_path, model_dir):
    """The key holds a digest of the checkpoint files, so new weights at the same path are recomputed."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(model_dir, ckpt)
    path = tmp_path / "c.sqlite"
    with CachedBackend(HFBackend(str(ckpt)), path=path) as cache:
        first = cache.generate(["hello"], GREEDY)
    with CachedBackend(HFBackend(str(ckpt)), path=path) as same:
        assert same.generate(["hello"], GREEDY) == first and same.hits == 1
    retrained = HFBackend(str(ckpt))
    with torch.no_grad():
        for p in retrained.model.parameters():
            p.mul_(-1.0)
    retrained.model.save_pretrained(ckpt)
    with CachedBackend(HFBackend(str(ckpt)), path=path) as after:
        after.generate(["hello"], GREEDY)
        assert (after.hits, after.misses) == (0, 1)
