"""OpenAIBackend: any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, OpenAI, ``reasonkit serve``).

    >>> lm = OpenAIBackend("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP
    >>> lm.generate([[{"role": "user", "content": "2+2?"}]], SamplingParams())       # doctest: +SKIP

Standard library only (urllib + a thread pool), so it adds no dependency. Behaviour:
  - a str prompt goes to ``/completions``, a list of messages to ``/chat/completions``
    (``force_chat=True`` sends str prompts as one user message instead);
  - one HTTP request per prompt carrying ``n``; at most ``max_concurrency`` requests in flight per
    backend, across all threads that share it;
  - 429, 408, 5xx, refused/reset connections and timeouts are retried up to ``max_retries`` times with
    exponential backoff and jitter, honouring ``Retry-After``; any other 4xx and any reply that is not
    the expected JSON end in one :class:`BackendError` carrying the server's message, without retry;
  - one request, retries and waits included, ends within ``deadline`` seconds (default
    ``timeout * (max_retries + 1) + 60``): a Retry-After that would pass it fails at once instead of
    sleeping; a reply larger than ``max_reply_bytes`` (64 MiB) is an error, never read whole;
  - servers that reject or ignore ``n > 1`` get ``n`` requests with ``n=1`` (seeds ``seed, seed+1 …``);
    greedy requests (temperature 0) ask for one sample and copy it ``n`` times, as HFBackend does;
  - token counts come from ``usage``; ``completion_tokens`` is split across the n choices in
    proportion to their text length unless each choice carries its own ``completion_tokens`` (as
    ``reasonkit serve`` sends); without ``usage``, counts are estimated as characters / 4 (warned once).
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import Any

from reasonkit.backends.base import BackendError
from reasonkit.backends.request import check_prompts, trim_at_stop
from reasonkit.hints import fix_hint
from reasonkit.types import Completion, Prompt, SamplingParams

MAX_RETRY_AFTER = (
    120.0  # seconds; a longer Retry-After is treated as this (a stuck run is worse than an error)
)
MAX_REPLY_BYTES = 64 * 2**20  # a reply larger than this is an error, never read whole
_RETRY_STATUS = {408, 429}


class _ClientError(BackendError):
    """A 4xx other than 408/429: the request itself is wrong, so retrying cannot help."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class OpenAIBackend:
    """A black-box LanguageModel over HTTP. Capabilities: {"chat"}."""

    #: presence/frequency penalties are OpenAI fields: sent on to the server, which applies them
    supports_penalties = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        force_chat: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        prompt_pack: str = "natural",
        kinds: Sequence[str] | None = None,
        name: str | None = None,
        deadline: float | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("need max_concurrency >= 1, max_retries >= 0, timeout > 0 and backoff >= 0")
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds (or None), got {deadline}")
        if max_reply_bytes < 1:
            raise ValueError(f"max_reply_bytes must be >= 1, got {max_reply_bytes}")
        #: seconds one request may take in all, retries and Retry-After waits included
        self.deadline: float = deadline if deadline is not None else timeout * (max_retries + 1) + 60.0
        self.max_reply_bytes = max_reply_bytes
        self.base_url = normalize_base_url(base_url)
        self.model = model
        self.api_key = api_key or os.environ.get("REASONKIT_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.force_chat = force_chat
        self.extra_body = dict(extra_body or {})
        self.prompt_pack = prompt_pack
        self.kinds: tuple[str, ...] | None = tuple(kinds) if kinds else None  # as the server reports them
        self.name: str = name or f"openai:{model}"
        self.capabilities: frozenset[str] = frozenset({"chat"})
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._n_supported: bool | None = None  # learnt from the first request with n > 1
        self._warned: set[str] = set()

    # ---- public --------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """One list of ``params.n`` completions per prompt, in prompt order (requests run concurrently)."""
        checked = check_prompts(prompts)
        futures: list[Future[list[Completion]]] = [
            self._executor().submit(self._complete, p, params) for p in checked
        ]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def list_models(self) -> list[dict[str, Any]]:
        """The ``data`` entries of ``GET /models`` (each has at least an ``id``)."""
        reply = self._request("GET", "/models", None)
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list) or not all(isinstance(m, dict) and "id" in m for m in data):
            raise BackendError(f"{self.base_url}/models returned no list of models: {str(reply)[:200]}")
        return data

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, model={self.model!r})"

    # ---- one prompt ----------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="reasonkit-http")
            return self._pool

    def _complete(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        chat = self.force_chat or not isinstance(prompt, str)
        if params.temperature == 0 and params.n > 1:  # greedy samples are identical: ask once, copy
            return self._call(prompt, params, chat, 1, params.seed)[:1] * params.n
        if params.n == 1 or self._n_supported is False:
            got: list[Completion] = []
        else:
            try:
                got = self._call(prompt, params, chat, params.n, params.seed)
                self._n_supported = len(got) >= params.n
                if not self._n_supported:
                    self._warn(
                        "n", f"{self.base_url} returned {len(got)} of n={params.n} choices; topping up"
                    )
            except _ClientError as first_error:
                if self._n_supported:
                    raise
                try:  # maybe the server only refuses n > 1; a single sample tells
                    got = self._call(prompt, params, chat, 1, params.seed)
                except _ClientError:
                    raise first_error from None
                self._n_supported = False
                self._warn(
                    "n", f"{self.base_url} refused n={params.n} ({first_error}); sending n requests with n=1"
                )
        while len(got) < params.n:
            seed = None if params.seed is None else params.seed + len(got)
            got.extend(self._call(prompt, params, chat, 1, seed))
        return got[: params.n]

    def _call(
        self, prompt: Prompt, params: SamplingParams, chat: bool, n: int, seed: int | None
    ) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": n,
        }
        if params.top_k > 0:  # not an OpenAI field; vLLM/SGLang accept it, OpenAI itself would refuse it
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = seed
        for key in ("presence_penalty", "frequency_penalty"):  # OpenAI fields; sent only when set
            if getattr(params, key):
                body[key] = getattr(params, key)
        if chat:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            body["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
        else:
            body["prompt"] = prompt
        body.update(self.extra_body)
        path = "/chat/completions" if chat else "/completions"
        return self._parse(path, self._request("POST", path, body), chat, params)

    def _parse(self, path: str, reply: Any, chat: bool, params: SamplingParams) -> list[Completion]:
        where = f"{self.base_url}{path}"
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list) or not choices:
            raise BackendError(f"{where} replied without a 'choices' list: {json.dumps(reply)[:300]}")
        texts, reasons, per_choice = [], [], []
        for choice in sorted(choices, key=_choice_index):
            text = _choice_text(choice, chat)
            if text is None:
                raise BackendError(f"{where} replied with a malformed choice: {json.dumps(choice)[:300]}")
            text, hit = trim_at_stop(text, params.stop)
            texts.append(text)
            reasons.append("stop" if hit else str(choice.get("finish_reason") or "stop"))
            per_choice.append(choice.get("completion_tokens"))
        tokens_in, outs = self._token_counts(reply.get("usage"), texts, where)
        if all(isinstance(k, int) for k in per_choice):  # `reasonkit serve` reports exact counts per choice
            outs = per_choice
        return [
            Completion(text=t, tokens_in=tokens_in, tokens_out=o, finish_reason=r)
            for t, o, r in zip(texts, outs, reasons)
        ]

    def _token_counts(self, usage: Any, texts: list[str], where: str) -> tuple[int, list[int]]:
        if (
            isinstance(usage, dict)
            and isinstance(usage.get("prompt_tokens"), int)
            and isinstance(usage.get("completion_tokens"), int)
        ):
            return usage["prompt_tokens"], split_count(usage["completion_tokens"], [len(t) for t in texts])
        self._warn("usage", f"{where} sent no usage; token counts are estimates (characters / 4)")
        return 0, [math.ceil(len(t) / 4) for t in texts]

    # ---- HTTP with retries ---------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        url = f"{self.base_url}{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        ends = time.monotonic() + self.deadline
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                request = urllib.request.Request(url, data=data, headers=headers, method=method)
                wait = max(0.001, min(self.timeout, ends - time.monotonic()))
                with urllib.request.urlopen(request, timeout=wait) as response:
                    raw = self._read_capped(response, url, ends)
                return _decode_json(raw, url)
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in _RETRY_STATUS and exc.code < 500:
                    raise _ClientError(self._client_error(url, exc.code, message), exc.code) from None
                last, retry_after = (
                    f"HTTP {exc.code}: {message}",
                    _retry_after(exc.headers.get("Retry-After")),
                )
            except urllib.error.URLError as exc:
                last = f"connection failed: {exc.reason}"
            except TimeoutError:  # socket.timeout is an alias since Python 3.10
                last = f"no reply within {self.timeout:g} s"
            except (ConnectionError, HTTPException, OSError) as exc:
                last = f"connection failed: {type(exc).__name__}: {exc}"
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                if time.monotonic() + delay >= ends:
                    raise BackendError(
                        f"{method} {url} gave up after {attempt + 1} attempt(s): the next retry (in {delay:.0f} s"
                        f"{', as Retry-After asked' if retry_after is not None else ''}) would pass the request's "
                        f"deadline of {self.deadline:g} s; last error: {last}. Allow more time with "
                        + fix_hint("--request-timeout SECONDS", "deadline=SECONDS")
                    )
                time.sleep(delay)
        raise BackendError(
            f"{method} {url} failed after {self.max_retries + 1} attempts; last error: {last}. "
            "Check that the server is running and reachable (for a local model: `reasonkit serve --model SPEC`); "
            "if it is only slow, allow it more time: "
            + fix_hint("--request-timeout SECONDS / --max-retries N", "timeout=SECONDS / max_retries=N")
        )

    def _read_capped(self, response: Any, url: str, ends: float) -> bytes:
        """The reply body, refusing one larger than ``max_reply_bytes`` or still arriving at the deadline."""
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_reply_bytes:
            raise BackendError(self._too_large(url, f"announces {int(length)} bytes"))
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > ends:
                raise BackendError(
                    f"{url}: the reply was still arriving at the request's deadline of {self.deadline:g} s"
                )
            chunk = response.read(min(1 << 20, self.max_reply_bytes + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_reply_bytes:
                raise BackendError(self._too_large(url, f"sent more than {self.max_reply_bytes} bytes"))

    def _too_large(self, url: str, what: str) -> str:
        return (
            f"{url}: the reply {what}, more than this client accepts (max_reply_bytes={self.max_reply_bytes}); "
            "a completion reply is normally a few kB, so this is not an OpenAI-compatible server, or raise "
            "max_reply_bytes"
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def _client_error(self, url: str, status: int, message: str) -> str:
        hint = ""
        if status in (401, 403):
            hint = " Fix: set REASONKIT_API_KEY or OPENAI_API_KEY" + fix_hint(".", ", or pass api_key=.")
        elif status == 404:
            hint = (
                f" Fix: check the base URL (it usually ends in /v1, e.g. http://localhost:8000/v1) and the "
                f"model name {self.model!r}; the server lists its models at {self.base_url}/models."
            )
        return f"{url} refused the request (HTTP {status}): {message}.{hint}"

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=4)


def normalize_base_url(url: str) -> str:
    """Strip trailing slashes; a bare ``http://host:port`` gets ``/v1`` (what every OpenAI-compatible server serves)."""
    url = url.rstrip("/")
    scheme_sep = url.index("://") + 3
    if "/" not in url[scheme_sep:]:
        url += "/v1"
    return url


def split_count(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split into integers proportional to ``weights`` that sum to ``total`` (largest remainder)."""
    if len(weights) == 1:
        return [total]
    norm = sum(weights)
    shares = [total * w / norm if norm else total / len(weights) for w in weights]
    counts = [int(s) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _choice_index(choice: Any) -> int:
    index = choice.get("index") if isinstance(choice, dict) else None
    return index if isinstance(index, int) else 0


def _choice_text(choice: Any, chat: bool) -> str | None:
    if not isinstance(choice, dict):
        return None
    if not chat:
        text = choice.get("text")
        return text if isinstance(text, str) else None
    message = choice.get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if content is None:  # e.g. a refusal or a tool call: no text, which is not malformed
        return ""
    return content if isinstance(content, str) else None


def _decode_json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        snippet = raw[:200].decode("utf-8", "replace")
        raise BackendError(
            f"{url} returned a reply that is not JSON (starts with {snippet!r}); is the base URL an "
            "OpenAI-compatible API (usually ending in /v1)?"
        ) from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else str(exc)
    try:
        payload = json.loads(raw)
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        return json.dumps(error)[:500]
    except ValueError:
        return raw[:500].decode("utf-8", "replace").strip() or str(exc.reason)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
