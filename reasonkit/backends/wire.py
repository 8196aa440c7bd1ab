"""The OpenAI wire format on the server side: request JSON -> (prompts, SamplingParams), completions -> reply JSON.

Only what ``reasonkit serve`` implements is accepted; a feature it would silently ignore (streaming,
logprobs, echo, penalties, logit_bias, suffix, tools, non-text response formats) is refused with a
400 naming the field, because a researcher comparing runs must not get quietly different sampling.
Defaults follow the OpenAI API: ``temperature=1``, ``top_p=1``, ``n=1``; ``max_tokens`` defaults to 16
for ``/v1/completions`` (as in the API) and to the server's ``default_max_tokens`` for chat.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reasonkit.types import Completion, Prompt, SamplingParams

MAX_N = 128


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
class ParsedRequest:
    prompts: list[Prompt]
    params: SamplingParams
    chat: bool


_UNSUPPORTED_IF_TRUE = ("stream", "echo", "logprobs", "top_logprobs", "suffix", "tools", "functions")
_ZERO_OR_ABSENT = ("frequency_penalty", "presence_penalty")


def parse_request(body: Any, chat: bool, served: str, default_max_tokens: int) -> ParsedRequest:
    """Validate an OpenAI request body for the model named ``served``; raise :class:`WireError` when wrong."""
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
    for key in _UNSUPPORTED_IF_TRUE:
        if body.get(key):
            raise WireError(f"'{key}' is not supported by reasonkit serve; leave it out or false", param=key)
    for key in _ZERO_OR_ABSENT:
        if body.get(key) not in (None, 0, 0.0):
            raise WireError(f"'{key}' is not supported by reasonkit serve; leave it out or 0", param=key)
    if body.get("logit_bias"):
        raise WireError("'logit_bias' is not supported by reasonkit serve", param="logit_bias")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise WireError("only response_format {'type': 'text'} is supported", param="response_format")
    if body.get("best_of") not in (None, 1, body.get("n", 1)):
        raise WireError("'best_of' other than n is not supported", param="best_of")
    prompts: list[Prompt] = (
        [_messages(body.get("messages"))] if chat else _completion_prompts(body.get("prompt"))
    )
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) if chat else body.get("max_tokens")
    try:
        params = SamplingParams(
            max_new_tokens=_integer("max_tokens", max_tokens, default_max_tokens if chat else 16),
            temperature=_number(body, "temperature", 1.0),
            top_p=_number(body, "top_p", 1.0),
            top_k=max(0, _integer("top_k", body.get("top_k"), 0)),  # vLLM's -1 means "off" too
            n=_integer("n", body.get("n"), 1),
            stop=_stops(body.get("stop")),
            seed=_integer("seed", body.get("seed"), None),
        )
    except ValueError as exc:
        raise WireError(str(exc)) from None
    if params.n > MAX_N:
        raise WireError(f"n must be <= {MAX_N}, got {params.n}", param="n")
    return ParsedRequest(prompts=prompts, params=params, chat=chat)


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


def _completion_prompts(value: Any) -> list[Prompt]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
        return list(value)
    raise WireError(
        "'prompt' must be a string or a non-empty list of strings (token-id prompts are not supported)",
        param="prompt",
    )


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


def reply(request: ParsedRequest, results: Sequence[Sequence[Completion]], served: str) -> dict[str, Any]:
    """The OpenAI reply for ``request``: choices prompt-major (index = prompt * n + sample), usage summed."""
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for completions in results:
        prompt_tokens += completions[0].tokens_in if completions else 0
        for c in completions:
            completion_tokens += c.tokens_out
            # completion_tokens per choice is an extension (OpenAI only sums them in usage); OpenAIBackend
            # reads it so token accounting through `reasonkit serve` is exact for n > 1 too.
            choice: dict[str, Any] = {
                "index": len(choices),
                "finish_reason": c.finish_reason,
                "completion_tokens": c.tokens_out,
            }
            if request.chat:
                choice["message"] = {"role": "assistant", "content": c.text}
            else:
                choice.update(text=c.text, logprobs=None)
            choices.append(choice)
    return {
        "id": f"{'chatcmpl' if request.chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": "chat.completion" if request.chat else "text_completion",
        "created": int(time.time()),
        "model": served,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def models_reply(served: str, prompt_pack: str, kinds: Sequence[str] | None = None) -> dict[str, Any]:
    """``GET /v1/models``; the ``reasonkit`` entry tells a client the prompt pack the model speaks and
    the problem kinds it was trained for (omitted for a general-purpose model)."""
    return {
        "object": "list",
        "data": [
            {
                "id": served,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "reasonkit",
                "reasonkit": {"prompt_pack": prompt_pack, **({"kinds": list(kinds)} if kinds else {})},
            }
        ],
    }
