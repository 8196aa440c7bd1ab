"""Per-token log-probabilities from HFBackend's model: what ``reasonkit serve`` reports as ``logprobs``.

One teacher-forced forward over the token ids (on the backend's layer path when it has one, as
:meth:`HFBackend.loglikelihood` does), log-softmax in float32, and for each scored position the
token's log-probability and the ``top_k`` most likely tokens. Summing the scores of a continuation
gives ``loglikelihood`` of it (tested), which is what lm-evaluation-harness reads from ``echo``.

These are the model's own distribution (before temperature, top-k or top-p), as vLLM and the OpenAI
API report them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from reasonkit.models.threads import torch_threads

if TYPE_CHECKING:
    from reasonkit.backends.hf import HFBackend


@dataclass(frozen=True)
class TokenLogprob:
    """One scored token: its id, log p (None for a first token, which has no context), and the
    ``top_k`` most likely ids at its position with their log p, most likely first."""

    token: int
    logprob: float | None
    top: tuple[tuple[int, float], ...] = ()


def token_logprobs(
    backend: HFBackend, ids: Sequence[int], start: int = 1, top_k: int = 0
) -> list[TokenLogprob]:
    """Scores of ``ids[start:]`` given what precedes each; ``ids[0]`` (if ``start`` is 0) gets None."""
    from reasonkit.backends.hf import _inference, _input_device

    ids = [int(t) for t in ids]
    if not 0 <= start <= len(ids):
        raise ValueError(f"start must be in 0..{len(ids)}, got {start}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    out = [TokenLogprob(ids[0], None)] if start == 0 and ids else []
    first = max(start, 1)
    if first >= len(ids):
        return out
    with backend._lock, torch_threads(backend.threads), _inference(backend.model):
        if backend.uses_whitebox_decode:
            lm = backend.whitebox
            tensor = torch.tensor([ids], device=lm.device)
            mask = torch.ones_like(tensor)
            hidden = lm.forward(
                lm.embed(tensor), attention_mask=mask, path=backend.path, use_cache=False
            ).hidden
            logits = lm.logits(hidden)[0]
        else:
            tensor = torch.tensor([ids], device=_input_device(backend.model))
            logits = backend.model(input_ids=tensor, use_cache=False).logits[0]
        logprobs = torch.log_softmax(
            logits[first - 1 : len(ids) - 1].float(), dim=-1
        )  # row r predicts ids[first + r]
        targets = torch.tensor(ids[first:], device=logprobs.device)
        chosen = logprobs.gather(1, targets[:, None])[:, 0].tolist()
        if top_k:
            values, indices = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
            tops = [tuple(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]
        else:
            tops = [()] * len(chosen)
    out += [TokenLogprob(t, lp, top) for t, lp, top in zip(ids[first:], chosen, tops)]
    return out
