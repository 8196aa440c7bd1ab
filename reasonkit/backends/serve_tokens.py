"""Token-level work of ``reasonkit serve``: prompt ids, the context check, log-probs and stream pieces.

A backend with a tokenizer (HFBackend) gets every prompt encoded once, here, before anything runs:
prompt tokens + ``max_tokens`` beyond the model's context is a 400 at once (a 2 MB prompt used to be
generated from). Log-probs are the backend's teacher-forced scores (:mod:`.hf_scores`) of the tokens
the model generated (``Completion.token_ids``, EOS included when generation ended on it; the
completion re-tokenized when the backend does not report them) — so ``max_tokens=1`` adds exactly
one scored token after an echoed prompt, as lm-evaluation-harness assumes, and a continuation's
summed log-probs equal ``backend.loglikelihood`` of it when its tokenization is the canonical one. Stream pieces and log-prob
tokens are the text of each token, cut so that they concatenate to the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reasonkit.backends.scheduler import TokenIds
from reasonkit.backends.wire import ParsedRequest, WireError
from reasonkit.backends.wire_reply import Choice
from reasonkit.types import Completion, Prompt


def has_tokens(backend: Any) -> bool:
    """Whether ``backend`` exposes what token-level features need (a tokenizer and per-token scores)."""
    return all(
        hasattr(backend, name) for name in ("tokenizer", "encode", "token_logprobs", "generate_encoded")
    )


def prompt_ids(backend: Any, request: ParsedRequest) -> list[list[int]] | None:
    """Each prompt's token ids (None when the backend has no tokenizer), after the context check."""
    if not has_tokens(backend):
        if request.token_level:
            what = (
                "token-id prompts" if any(isinstance(p, tuple) for p in request.prompts) else "logprobs/echo"
            )
            raise WireError(
                f"{what} cannot apply: the served backend {backend.name!r} has no tokenizer (it is a remote "
                "server); serve a local model for token-level features",
                param="prompt" if what == "token-id prompts" else "logprobs",
            )
        return None
    vocab = len(backend.tokenizer)
    encoded: list[list[int]] = []
    for i, prompt in enumerate(request.prompts):
        if isinstance(prompt, tuple):
            bad = [t for t in prompt if t >= vocab]
            if bad:
                raise WireError(
                    f"prompt {i} has token ids outside the vocabulary (0..{vocab - 1}): {bad[:5]}",
                    param="prompt",
                )
            encoded.append(list(prompt))
        else:
            encoded.append(_encode_bounded(backend, prompt, i))
        if not encoded[-1]:
            raise WireError(
                f"prompt {i} is empty after tokenization; give the model some text", param="prompt"
            )
    limit = getattr(backend, "context_length", None)
    if isinstance(limit, int):
        for i, ids in enumerate(encoded):
            if len(ids) + request.max_tokens > limit:
                raise WireError(
                    f"prompt {i} has {len(ids)} tokens; with max_tokens={request.max_tokens} that is "
                    f"{len(ids) + request.max_tokens}, beyond the model's context of {limit} tokens. Shorten the "
                    "prompt or lower max_tokens",
                    param="max_tokens" if len(ids) < limit else "prompt",
                    code="context_length_exceeded",
                )
    return encoded


#: characters per token above which a prompt's prefix is not proof enough and the whole is encoded
PREFIX_CHARS_PER_TOKEN = 16


def _encode_bounded(backend: Any, prompt: Any, i: int) -> list[int]:
    """``backend.encode(prompt)``, except that a prompt far beyond the context is refused from a prefix:
    tokenizing a 2 MB prompt whole took 7 s and 800 MB here before the context check could refuse it."""
    limit = getattr(backend, "context_length", None)
    if (
        not isinstance(prompt, str)
        or not isinstance(limit, int)
        or len(prompt) <= PREFIX_CHARS_PER_TOKEN * (limit + 2)
    ):
        return list(backend.encode(prompt))
    head = PREFIX_CHARS_PER_TOKEN * (limit + 2)
    counted = len(backend.encode(prompt[:head]))
    # A cut can change how the last word is split, never by a factor of two: a prefix twice the context
    # proves the whole is beyond it; anything closer is encoded whole and checked exactly below.
    if counted > 2 * limit:
        raise WireError(
            f"prompt {i} is far beyond the model's context of {limit} tokens (its first {head:,} of {len(prompt):,} "
            f"characters alone are {counted:,} tokens). Shorten the prompt",
            param="prompt",
            code="context_length_exceeded",
        )
    return list(backend.encode(prompt))


def generation_prompts(request: ParsedRequest, encoded: list[list[int]] | None) -> list[Prompt | TokenIds]:
    """What the scheduler generates from: token ids when known (encoded once), else the prompts."""
    if encoded is None:
        return list(request.prompts)
    return [tuple(ids) for ids in encoded]


def choices(
    backend: Any,
    request: ParsedRequest,
    encoded: list[list[int]] | None,
    results: Sequence[Sequence[Completion]] | None,
) -> list[Choice]:
    """The reply's choices, prompt-major; ``results`` is None when nothing was generated (max_tokens 0)."""
    out: list[Choice] = []
    for i, prompt in enumerate(request.prompts):
        completions = results[i] if results is not None else [Completion("", 0, 0, "length")] * request.n
        for c in completions:
            if encoded is None:
                out.append(Choice(c.text, c.finish_reason, c.tokens_out))
            else:
                out.append(_token_choice(backend, request, prompt, encoded[i], c))
    return out


def _token_choice(backend: Any, request: ParsedRequest, prompt: Any, ids: list[int], c: Completion) -> Choice:
    tok = backend.tokenizer
    if c.token_ids is not None:  # the tokens the model generated (lm-eval counts on one per max_tokens=1)
        generated = list(c.token_ids)
    else:
        generated = list(tok(c.text, add_special_tokens=False)["input_ids"]) if c.text else []
        eos = tok.eos_token_id
        if c.finish_reason == "stop" and c.tokens_out == len(generated) + 1 and isinstance(eos, int):
            generated.append(eos)  # generation ended on EOS: it is a generated token with a log-prob
    start = 0 if request.echo else len(ids)
    scored = ids + generated
    text = c.text
    if request.echo:
        text = (prompt if isinstance(prompt, str) else tok.decode(ids)) + c.text
    if request.logprobs is None:
        pieces = _pieces(tok, scored, start) if request.stream else []
        return Choice(text, c.finish_reason, c.tokens_out, _fit(pieces, text))
    scores = backend.token_logprobs(scored, start=start, top_k=request.logprobs)
    pieces = _fit(_pieces(tok, scored, start), text)
    if len(pieces) != len(scores):  # the text could not be cut at token boundaries: one piece per token
        pieces = [tok.decode([s.token]) for s in scores]
    tops = [None if s.logprob is None else {_token_text(tok, t): v for t, v in s.top} for s in scores]
    return Choice(text, c.finish_reason, c.tokens_out, pieces, [s.logprob for s in scores], tops)


def _pieces(tok: Any, ids: list[int], start: int) -> list[str]:
    """The text each of ``ids[start:]`` adds, by incremental decoding (exact for prefix-stable tokenizers)."""
    pieces, before = [], tok.decode(ids[:start], skip_special_tokens=True) if start else ""
    for end in range(start + 1, len(ids) + 1):
        now = tok.decode(ids[:end], skip_special_tokens=True)
        pieces.append(now[len(before) :] if now.startswith(before) else tok.decode([ids[end - 1]]))
        before = now
    return pieces


def _fit(pieces: list[str], text: str) -> list[str]:
    """``pieces`` when they concatenate to ``text`` (the echoed prompt may decode differently), else
    the same number of pieces cut from ``text`` at the same offsets as far as they agree."""
    if "".join(pieces) == text:
        return pieces
    if not pieces:
        return [text] if text else []
    out, at = [], 0
    for k, piece in enumerate(pieces):
        end = len(text) if k == len(pieces) - 1 else min(len(text), at + len(piece))
        out.append(text[at:end])
        at = end
    return out


def _token_text(tok: Any, token: int) -> str:
    return str(tok.decode([token]))


def stream_prefix(backend: Any, tokens: Sequence[int], stops: Sequence[str]) -> str:
    """The text of ``tokens`` (generated so far) that the finished completion is sure to start with.

    Cut at EOS and at the first stop string; short of a stop string, the last ``len(stop) - 1``
    characters (a stop string may be starting there), a trailing partial character (U+FFFD) and
    trailing whitespace (tokenizers that tidy spaces before punctuation change it) are held back.
    """
    eos = getattr(backend, "_eos_ids", None) or {backend.tokenizer.eos_token_id}
    end = next((k for k, t in enumerate(tokens) if t in eos), len(tokens))
    text = str(backend.tokenizer.decode(list(tokens[:end]), skip_special_tokens=True))
    cuts = [text.find(s) for s in stops if s in text]
    if cuts:
        return text[: min(cuts)]
    hold = max((len(s) for s in stops), default=1) - 1
    if hold:
        text = text[: max(0, len(text) - hold)]
    return text.rstrip("\ufffd").rstrip()
