"""The OpenAI wire format on the server side: request JSON -> a :class:`ParsedRequest`.

Supported: ``n``, ``temperature``, ``top_p``, ``top_k``, ``max_tokens``, ``stop``, ``seed``,
``stream`` (+ ``stream_options.include_usage``), completion ``logprobs`` (top-k per token) and
``echo`` (the prompt's own token log-probs; ``max_tokens: 0`` scores only), chat ``logprobs`` /
``top_logprobs``, token-id prompts, and ``presence_penalty`` / ``frequency_penalty`` (-2..2, as
OpenAI; the server refuses them for a backend that cannot honour them). Token-level features need a
backend with a tokenizer (a local model); on one without, they are refused. What cannot apply is
refused with a 400 naming the field — ``suffix``, tools, ``logit_bias``, non-text formats —
because a researcher comparing runs must not get quietly different sampling. Limits (prompts per
request, ``max_tokens``, the model's context) come from the server (:class:`Limits`).
Defaults follow the OpenAI API: ``temperature=1``, ``top_p=1``, ``n=1``; ``max_tokens`` defaults to 16
for ``/v1/completions`` and to the server's ``default_max_tokens`` for chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasonkit.types import Prompt, SamplingParams

MAX_N = 128
MAX_LOGPROBS = 20  # vLLM's limit; OpenAI's is 5 for completions and 20 for chat
TokenIds = tuple[int, ...]


class WireError(ValueError):
    """A request the server refuses; ``status`` and ``code`` go into the OpenAI-style error JSON."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    def to_json(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``reasonkit serve`` flags)."""

    max_prompts: int = 256  # prompts x n per request
    max_tokens: int = 4096  # the largest max_tokens accepted
    default_max_tokens: int = 256  # chat requests that set none


@dataclass(frozen=True)
class ParsedRequest:
    prompts: list[Prompt | TokenIds]
    params: SamplingParams | None  # None: nothing to generate (echo with max_tokens 0)
    chat: bool
    max_tokens: int = 16
    n: int = 1
    logprobs: int | None = None  # top-k alternatives per token (0: only the chosen token's); None: off
    echo: bool = False
    stream: bool = False
    include_usage: bool = False

    @property
    def token_level(self) -> bool:
        """Whether answering needs the model's tokenizer (log-probs, echo, token-id prompts)."""
        return self.logprobs is not None or self.echo or any(isinstance(p, tuple) for p in self.prompts)


_REFUSED_IF_SET = ("suffix", "tools", "functions", "tool_choice", "function_call")
PENALTIES = ("presence_penalty", "frequency_penalty")


def parse_request(body: Any, chat: bool, served: str, limits: Limits | int = Limits()) -> ParsedRequest:
    """Validate an OpenAI request body for the model named ``served``; raise :class:`WireError` when wrong."""
    if isinstance(limits, int):  # the old signature: default_max_tokens
        limits = Limits(default_max_tokens=limits)
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != served:
        raise WireError(
            f"The model `{model}` does not exist; this server serves {served!r}",
            404,
            "model",
            "model_not_found",
        )
    for key in _REFUSED_IF_SET:
        if body.get(key):
            raise WireError(f"'{key}' is not supported by reasonkit serve; leave it out", param=key)
    penalties = {key: _number(body, key, 0.0) for key in PENALTIES}
    for key, value in penalties.items():
        if not -2.0 <= value <= 2.0:
            raise WireError(f"'{key}' must be in -2..2, got {value:g}", param=key)
    if body.get("logit_bias"):
        raise WireError("'logit_bias' is not supported by reasonkit serve", param="logit_bias")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise WireError("only response_format {'type': 'text'} is supported", param="response_format")
    n = _integer("n", body.get("n"), 1)
    if body.get("best_of") not in (None, 1, n):
        raise WireError("'best_of' other than n is not supported", param="best_of")
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise WireError("'stream_options' must be an object and needs stream: true", param="stream_options")
    include_usage = bool(options and _flag(options, "include_usage"))
    prompts: list[Prompt | TokenIds] = (
        [_messages(body.get("messages"))] if chat else _completion_prompts(body.get("prompt"))
    )
    echo, logprobs = False, None
    if chat:
        if _flag(body, "logprobs"):
            logprobs = _bounded("top_logprobs", body.get("top_logprobs"), 0, MAX_LOGPROBS, 0)
        elif body.get("top_logprobs") is not None:
            raise WireError("'top_logprobs' needs logprobs: true", param="top_logprobs")
        if body.get("echo"):
            raise WireError("'echo' is a /v1/completions field", param="echo")
    else:
        echo = _flag(body, "echo")
        if body.get("logprobs") is not None:
            logprobs = _bounded("logprobs", body.get("logprobs"), 0, MAX_LOGPROBS, 0)
    raw_max = body.get("max_completion_tokens", body.get("max_tokens")) if chat else body.get("max_tokens")
    max_tokens = _integer("max_tokens", raw_max, limits.default_max_tokens if chat else 16)
    if max_tokens > limits.max_tokens:
        raise WireError(
            f"max_tokens={max_tokens} is above this server's limit of {limits.max_tokens} "
            "(reasonkit serve --max-tokens-limit)",
            param="max_tokens",
        )
    if max_tokens < (0 if echo else 1):
        raise WireError(
            f"max_tokens must be >= 1 (0 only with echo, to score the prompt), got {max_tokens}",
            param="max_tokens",
        )
    if not 1 <= n <= MAX_N:
        raise WireError(f"n must be >= 1 and <= {MAX_N}, got {n}", param="n")
    if len(prompts) * n > limits.max_prompts:
        raise WireError(
            f"{len(prompts)} prompt(s) x n={n} is more than this server's {limits.max_prompts} sequences per "
            "request; split the request (reasonkit serve --max-prompts raises the limit)",
            param="prompt",
        )
    try:
        params = SamplingParams(
            max_new_tokens=max(1, max_tokens),
            temperature=_number(body, "temperature", 1.0),
            top_p=_number(body, "top_p", 1.0),
            top_k=max(0, _integer("top_k", body.get("top_k"), 0)),  # vLLM's -1 means "off" too
            n=n,
            stop=_stops(body.get("stop")),
            seed=_integer("seed", body.get("seed"), None),
            **penalties,
        )
    except ValueError as exc:
        raise WireError(str(exc)) from None
    return ParsedRequest(
        prompts=prompts,
        params=params if max_tokens > 0 else None,
        chat=chat,
        max_tokens=max_tokens,
        n=n,
        logprobs=logprobs,
        echo=echo,
        stream=stream,
        include_usage=include_usage,
    )


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise WireError(f"'{name}' must be true or false, got {value!r:.50}", param=name)
    return value


def _bounded(name: str, value: Any, low: int, high: int, default: int) -> int:
    number = _integer(name, value, default)
    if not low <= number <= high:
        raise WireError(f"'{name}' must be in {low}..{high}, got {number}", param=name)
    return int(number)


def _integer(name: str, value: Any, default: int | None) -> Any:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"'{name}' must be an integer, got {value!r}", param=name)
    return value


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"'{name}' must be a number, got {value!r}", param=name)
    return float(value)


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise WireError("'stop' must be a string or a list of strings", param="stop")
    return tuple(s for s in value if s)


def _completion_prompts(value: Any) -> list[Prompt | TokenIds]:
    """A string, a list of strings, a list of token ids, or a list of token-id lists."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(p, str) for p in value):
            return list(value)
        if all(_is_token(t) for t in value):
            return [tuple(value)]
        if all(isinstance(p, list) and p and all(_is_token(t) for t in p) for p in value):
            return [tuple(p) for p in value]
    raise WireError(
        "'prompt' must be a string, a non-empty list of strings, a list of token ids (non-negative "
        "integers) or a list of such lists",
        param="prompt",
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise WireError(
            "'messages' must be a non-empty list of {'role', 'content'} objects", param="messages"
        )
    out = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise WireError(f"every message needs a string 'role', got {m!r:.100}", param="messages")
        out.append({"role": m["role"], "content": _content_text(m.get("content"))})
    return out


def _content_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list (other part types are refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise WireError("message 'content' must be a string or a list of text parts", param="messages")
