"""The OpenAI wire format on the server side, replies: JSON bodies, log-probs, and stream chunks.

A reply is built from :class:`Choice` objects, ``n`` per prompt, prompt-major (index = prompt * n +
sample). Log-probs come in the API's two shapes: completions' ``{"tokens", "token_logprobs",
"top_logprobs", "text_offset"}`` (echo puts the prompt's tokens first, the very first with log-prob
null) and chat's ``{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}``. A streamed reply
is the same choices cut into ``pieces`` (one per token when the model's tokenizer is known), one
server-sent event each, then a chunk with the finish reason, a usage-only chunk when
``stream_options.include_usage`` asked for it, and ``data: [DONE]``; the pieces of a choice
concatenate to its text. That is :func:`stream_chunks`, for a reply generated whole (log-probs, echo,
remote backends); a request streamed while it generates gets its chunks from :class:`ChunkMaker`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasonkit.backends.wire import ParsedRequest


@dataclass
class Choice:
    """One returned sequence; ``pieces`` concatenate to ``text`` (token strings when known)."""

    text: str
    finish_reason: str
    completion_tokens: int
    pieces: list[str] = field(default_factory=list)
    logprobs: list[float | None] | None = None  # one per piece
    top: list[dict[str, float] | None] | None = None  # one per piece

    def __post_init__(self) -> None:
        if not self.pieces:
            self.pieces = [self.text] if self.text else []


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def reply(
    request: ParsedRequest, choices: Sequence[Choice], prompt_tokens: int, served: str
) -> dict[str, Any]:
    """The whole (non-streamed) reply; each choice carries its own ``completion_tokens`` (an extension
    OpenAIBackend reads so token accounting through ``reasonkit serve`` is exact for n > 1 too)."""
    out: list[dict[str, Any]] = []
    for index, c in enumerate(choices):
        entry: dict[str, Any] = {
            "index": index,
            "finish_reason": c.finish_reason,
            "completion_tokens": c.completion_tokens,
        }
        if request.chat:
            entry["message"] = {"role": "assistant", "content": c.text}
            entry["logprobs"] = _chat_logprobs(c, 0, len(c.pieces)) if c.logprobs is not None else None
        else:
            entry["text"] = c.text
            entry["logprobs"] = (
                _completion_logprobs(c, 0, len(c.pieces), 0) if c.logprobs is not None else None
            )
        out.append(entry)
    return {
        "id": _id(request),
        "object": "chat.completion" if request.chat else "text_completion",
        "created": int(time.time()),
        "model": served,
        "choices": out,
        "usage": usage(prompt_tokens, sum(c.completion_tokens for c in choices)),
    }


class ChunkMaker:
    """The chunks of one streamed reply (one id and creation time for all of them)."""

    def __init__(self, request: ParsedRequest, served: str) -> None:
        self.request, self.served = request, served
        self.rid, self.created = _id(request), int(time.time())
        self.kind = "chat.completion.chunk" if request.chat else "text_completion"

    def chunk(self, choice: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.rid,
            "object": self.kind,
            "created": self.created,
            "model": self.served,
            "choices": [] if choice is None else [choice],
        }
        if self.request.include_usage:
            body["usage"] = None
        return body

    def role(self, index: int) -> dict[str, Any]:
        """Chat's first chunk of a choice."""
        delta = {"role": "assistant", "content": ""}
        return self.chunk({"index": index, "delta": delta, "logprobs": None, "finish_reason": None})

    def piece(self, index: int, text: str, logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.request.chat:
            return self.chunk(
                {"index": index, "delta": {"content": text}, "logprobs": logprobs, "finish_reason": None}
            )
        return self.chunk({"index": index, "text": text, "logprobs": logprobs, "finish_reason": None})

    def finish(self, index: int, reason: str) -> dict[str, Any]:
        if self.request.chat:
            return self.chunk({"index": index, "delta": {}, "logprobs": None, "finish_reason": reason})
        return self.chunk({"index": index, "text": "", "logprobs": None, "finish_reason": reason})

    def usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        final = self.chunk(None)
        final["usage"] = usage(prompt_tokens, completion_tokens)
        return final


def stream_chunks(
    request: ParsedRequest, choices: Sequence[Choice], prompt_tokens: int, served: str
) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed reply (without the final ``[DONE]``)."""
    make = ChunkMaker(request, served)
    for index, c in enumerate(choices):
        if request.chat:
            yield make.role(index)
        offset = 0
        for k, piece in enumerate(c.pieces):
            lp = None
            if c.logprobs is not None:
                lp = (
                    _chat_logprobs(c, k, k + 1) if request.chat else _completion_logprobs(c, k, k + 1, offset)
                )
            yield make.piece(index, piece, lp)
            offset += len(piece)
        yield make.finish(index, c.finish_reason)
    if request.include_usage:
        yield make.usage(prompt_tokens, sum(c.completion_tokens for c in choices))


def _completion_logprobs(c: Choice, start: int, end: int, offset: int) -> dict[str, Any]:
    assert c.logprobs is not None
    offsets, at = [], offset
    for piece in c.pieces[start:end]:
        offsets.append(at)
        at += len(piece)
    return {
        "tokens": c.pieces[start:end],
        "token_logprobs": c.logprobs[start:end],
        "top_logprobs": (c.top or [None] * len(c.pieces))[start:end],
        "text_offset": offsets,
    }


def _chat_logprobs(c: Choice, start: int, end: int) -> dict[str, Any]:
    assert c.logprobs is not None
    tops = c.top or [None] * len(c.pieces)
    content = [
        {
            "token": piece,
            "logprob": lp,
            "bytes": list(piece.encode()),
            "top_logprobs": [
                {"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in (top or {}).items()
            ],
        }
        for piece, lp, top in zip(c.pieces[start:end], c.logprobs[start:end], tops[start:end])
    ]
    return {"content": content, "refusal": None}


def _id(request: ParsedRequest) -> str:
    return f"{'chatcmpl' if request.chat else 'cmpl'}-{uuid.uuid4().hex}"


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
