"""CachedBackend: memoise deterministic requests in memory and, optionally, in a SQLite file.

RL over a fixed problem set asks for the same (prompt, parameters) again and again; a greedy or
seeded request has one answer, so it is computed once. Keys are (backend identity, prompt, every
SamplingParams field), the identity being the backend's ``fingerprint`` when it has one (HFBackend:
its name plus a digest of the checkpoint's files) and its ``name`` otherwise. Unseeded sampling
(temperature > 0, no seed) always goes to the backend.

    >>> lm = CachedBackend(load_backend("builtin"), path="runs/cache.sqlite")   # doctest: +SKIP
    >>> lm.generate(prompts, SamplingParams()); lm.hits, lm.misses              # doctest: +SKIP

Decisions:
  - a batched call sends only its misses to the inner backend, once per distinct prompt;
  - hits return the stored completions unchanged, token counts included: a Trace's cost measures the
    method, not the state of the cache (``hits`` tells what the cache saved);
  - ``loglikelihood`` is memoised per (prefix, continuation) the same way;
  - SQLite (WAL) makes the file safe for threads of one process and for several processes; a lock
    guards the in-memory dict; two threads missing the same key at once may both compute it
    (same answer, stored once);
  - every other attribute (``model``, ``tokenizer``, ``prompt_pack``, ``render`` …) is the inner backend's.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonkit.backends.base import BackendError, LanguageModel, require_capability
from reasonkit.backends.request import check_prompt, check_prompts
from reasonkit.types import Completion, Prompt, SamplingParams

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class CachedBackend:
    """A LanguageModel that answers repeated deterministic requests from memory or disk."""

    def __init__(self, inner: LanguageModel, path: str | Path | None = None):
        self.inner = inner
        self.name: str = inner.name
        self.capabilities: frozenset[str] = inner.capabilities
        # HFBackend's fingerprint digests the checkpoint files, so a model retrained in place misses.
        self._identity = str(getattr(inner, "fingerprint", None) or inner.name)
        self.path = Path(path) if path is not None else None
        self.hits = 0
        self.misses = 0
        self.passthrough = 0  # non-deterministic prompts sent without caching
        self._memory: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self._db = _open_db(self.path)

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes CachedBackend lacks; "inner" itself must not recurse.
        if attribute == "inner":
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    # ---- generate ------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """Cached completions for deterministic params; everything else straight from the inner backend."""
        checked = check_prompts(prompts)
        if not params.deterministic:
            with self._lock:
                self.passthrough += len(checked)
            return self.inner.generate(checked, params)
        keys = [self._key("generate", p, params.to_dict()) for p in checked]
        found = self._lookup(keys)
        todo: dict[str, Prompt] = {k: p for k, p in zip(keys, checked) if k not in found}
        if todo:
            fresh = self.inner.generate(list(todo.values()), params)
            if len(fresh) != len(todo):
                raise BackendError(f"{self.name} returned {len(fresh)} results for {len(todo)} prompts")
            new = {k: [_to_dict(c) for c in cs] for k, cs in zip(todo, fresh)}
            self._store(new)
            found.update(new)
        with self._lock:
            self.misses += sum(1 for k in keys if k in todo)
            self.hits += sum(1 for k in keys if k not in todo)
        return [[_from_dict(d) for d in found[k]] for k in keys]

    # ---- loglikelihood -------------------------------------------------------------------------
    def loglikelihood(self, prefix: Prompt, continuations: Sequence[str]) -> list[float]:
        """The inner backend's scores, each (prefix, continuation) computed once."""
        require_capability(self.inner, "loglikelihood", "CachedBackend.loglikelihood")
        check_prompt(prefix, 0)
        keys = [self._key("loglikelihood", prefix, c) for c in continuations]
        found = self._lookup(keys)
        todo = {k: c for k, c in zip(keys, continuations) if k not in found}
        if todo:
            scores = self.inner.loglikelihood(prefix, list(todo.values()))  # type: ignore[attr-defined]
            new = dict(zip(todo, (float(s) for s in scores)))
            self._store(new)
            found.update(new)
        with self._lock:
            self.misses += sum(1 for k in keys if k in todo)
            self.hits += sum(1 for k in keys if k not in todo)
        return [float(found[k]) for k in keys]

    # ---- storage -------------------------------------------------------------------------------
    def _key(self, kind: str, prompt: Prompt, extra: Any) -> str:
        body = (
            prompt
            if isinstance(prompt, str)
            else [{"role": m["role"], "content": m["content"]} for m in prompt]
        )
        payload = json.dumps([kind, self._identity, body, extra], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _lookup(self, keys: Sequence[str]) -> dict[str, Any]:
        with self._lock:
            found = {k: self._memory[k] for k in keys if k in self._memory}
            missing = [k for k in dict.fromkeys(keys) if k not in found]
            if missing and self._db is not None:
                for start in range(0, len(missing), 500):  # SQLite caps the number of bound parameters
                    chunk = missing[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk)
                    for key, value in rows:
                        found[key] = self._memory[key] = json.loads(value)
        return found

    def _store(self, entries: dict[str, Any]) -> None:
        with self._lock:
            self._memory.update(entries)
            if self._db is not None:
                with self._db:  # one transaction per batch
                    self._db.executemany(
                        "INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)",
                        [(k, json.dumps(v, ensure_ascii=False)) for k, v in entries.items()],
                    )

    def clear_memory(self) -> None:
        """Forget the in-memory copy (the disk file, if any, still answers)."""
        with self._lock:
            self._memory.clear()

    def close(self) -> None:
        """Close the cache file and the inner backend (the CachedBackend owns what it wraps)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> CachedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        return f"CachedBackend({self.inner!r}, {where}, hits={self.hits}, misses={self.misses})"


def _open_db(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.commit()
    except (sqlite3.DatabaseError, OSError) as exc:
        raise BackendError(
            f"cannot use {path} as a cache file ({exc}); delete it or choose another path"
        ) from exc
    return db


def _to_dict(c: Completion) -> dict[str, Any]:
    return {
        "text": c.text,
        "tokens_in": c.tokens_in,
        "tokens_out": c.tokens_out,
        "finish_reason": c.finish_reason,
        "logprobs": list(c.logprobs) if c.logprobs is not None else None,
        "meta": dict(c.meta),
    }


def _from_dict(d: dict[str, Any]) -> Completion:
    return Completion(
        text=d["text"],
        tokens_in=int(d["tokens_in"]),
        tokens_out=int(d["tokens_out"]),
        finish_reason=d.get("finish_reason", "stop"),
        logprobs=tuple(d["logprobs"]) if d.get("logprobs") is not None else None,
        meta=dict(d.get("meta") or {}),
    )
