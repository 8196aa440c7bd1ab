"""Per-row sampling and stop strings, shared by ``model.generate`` (HFBackend plugs them into it) and
the white-box decode loop (:mod:`reasonkit.models.whitebox.decode_loop`), so both draw the same tokens.

Why not ``generate(do_sample=True)`` with ``torch.manual_seed``: one global generator shared by the
whole batch makes a seeded request's samples depend on what else is in the batch (and on its
position there), so caching, the server's request batching and resumed runs would all change
results. Here every row owns a ``torch.Generator`` on the CPU seeded from ``(seed, sample index)``:
the j-th sample of a seeded request draws the same uniforms whatever batch it runs in, and on any
device. :class:`RowSampler` turns the warped distribution into a one-hot score row, so ``generate``
runs in greedy mode and its ``argmax`` picks the sampled token.

:class:`StopOnStrings` ends each row independently when its generated text contains a stop string
(transformers' own ``StopStringCriteria`` needs the tokenizer's vocabulary preprocessed per call;
decoding a short tail window is simpler and works with any tokenizer).

:class:`OpenAIPenalties` applies OpenAI's ``presence_penalty`` / ``frequency_penalty`` to the raw
logits (counts over the tokens generated so far, not the prompt), before the sampler's warpers.
:func:`token_processors` builds the chain both decoders run at each step: penalties, then the
sampler (none of either: plain greedy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


def row_seed(seed: int, sample_index: int) -> int:
    """A well-mixed 63-bit seed for sample ``sample_index`` of a request seeded with ``seed``."""
    digest = hashlib.blake2b(f"reasonkit:{seed}:{sample_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def row_generator(seed: int | None, sample_index: int) -> torch.Generator:
    """A CPU generator for one row; unseeded rows draw their seed from torch's global generator."""
    if seed is None:
        base = int(torch.randint(0, 2**62, (1,)).item())
        return torch.Generator().manual_seed(row_seed(base, sample_index))
    return torch.Generator().manual_seed(row_seed(seed, sample_index))


def sampling_warpers(temperature: float, top_k: int = 0, top_p: float = 1.0) -> LogitsProcessorList:
    """transformers' warpers in ``generate(do_sample=True)``'s order: temperature, then top-k (0: off),
    then top-p (1.0: off). ``softmax(warpers(None, logits))`` is the distribution :class:`RowSampler`
    draws from (HRPO projects it onto the embeddings)."""
    if temperature <= 0:
        raise ValueError(f"sampling needs temperature > 0, got {temperature}")
    warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(temperature)]
    if top_k > 0:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return LogitsProcessorList(warpers)


class RowSampler(LogitsProcessor):
    """Sample one token per row with that row's generator; return scores that are 0 there, -inf elsewhere.

    Temperature, top-k and top-p are applied with transformers' own warpers, in that order (as
    ``generate(do_sample=True)`` would), then the token is drawn by inverting the CDF with one
    uniform per row from the row's generator.
    """

    def __init__(self, generators: Sequence[torch.Generator], temperature: float, top_k: int, top_p: float):
        if temperature <= 0:
            raise ValueError("RowSampler is for temperature > 0; greedy decoding needs no sampler")
        self.generators = list(generators)
        self.warpers = sampling_warpers(temperature, top_k, top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"RowSampler built for {len(self.generators)} rows, got {scores.shape[0]}")
        warped = self.warpers(input_ids, scores.float())  # type: ignore[arg-type]
        cdf = torch.softmax(warped, dim=-1).cumsum(dim=-1)  # (B, V)
        uniforms = torch.cat([torch.rand(1, generator=g) for g in self.generators])  # (B,)
        targets = uniforms.to(cdf.device)[:, None] * cdf[:, -1:]
        # right=True picks the first index whose CDF exceeds u, so a zero-probability token never wins.
        chosen = torch.searchsorted(cdf, targets, right=True).clamp_(max=cdf.shape[-1] - 1)  # (B, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)  # type: ignore[return-value]


class OpenAIPenalties(LogitsProcessor):
    """OpenAI's presence and frequency penalties on each row's logits.

    ``logit[j] -= frequency * count_j + presence * (count_j > 0)`` where ``count_j`` is how often
    token ``j`` occurs among the row's generated tokens so far (``input_ids[:, prompt_length:]``;
    rows are left-padded, so every row's prompt ends at ``prompt_length``). Negative values
    encourage repetition, as in the API (range -2..2 there; not enforced here).
    """

    def __init__(self, presence: float, frequency: float, prompt_length: int) -> None:
        self.presence = float(presence)
        self.frequency = float(frequency)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        scores = scores.float()
        generated = input_ids[:, self.prompt_length :].to(scores.device)
        if generated.shape[1] == 0:
            return scores  # type: ignore[return-value]
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)  # type: ignore[return-value]


def token_processors(
    *,
    prompt_length: int,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generators: Sequence[torch.Generator] | None = None,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
) -> LogitsProcessorList:
    """What every decoder (``generate`` in HFBackend, the white-box loop) applies to a step's logits:
    OpenAI's penalties when set, then :class:`RowSampler` when ``temperature > 0`` (it needs one
    generator per row). Empty: greedy on the raw logits. The argmax of the result is the next token."""
    processors: list[LogitsProcessor] = []
    if presence_penalty or frequency_penalty:
        processors.append(OpenAIPenalties(presence_penalty, frequency_penalty, prompt_length))
    if temperature > 0:
        if generators is None:
            raise ValueError("sampling (temperature > 0) needs one torch.Generator per row")
        processors.append(RowSampler(generators, temperature, top_k, top_p))
    return LogitsProcessorList(processors)


class StopOnStrings(StoppingCriteria):
    """Finish a row once its generated text contains a stop string; remembers where each row stopped.

    ``stopped_at[row]`` is the number of generated tokens when the stop string first appeared
    (None while it has not), which is the row's token count for accounting.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_length: int, batch_size: int):
        self.tokenizer = tokenizer
        self.stops = tuple(stops)
        self.prompt_length = prompt_length
        # A token decodes to at least one byte and a character is at most 4 bytes, so this many tail
        # tokens always cover the longest stop string, plus slack for a partial character at the start.
        self.window = 4 * max(len(s) for s in self.stops) + 8
        self.stopped_at: list[int | None] = [None] * batch_size

    def __call__(  # type: ignore[override]
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        rows = [r for r, at in enumerate(self.stopped_at) if at is None]
        if rows and generated > 0:
            tails = input_ids[rows, self.prompt_length :][:, -self.window :].tolist()
            texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
            for row, text in zip(rows, texts):
                if any(s in text for s in self.stops):
                    self.stopped_at[row] = generated
        done = [at is not None for at in self.stopped_at]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class TokenTap(StoppingCriteria):
    """Never stops anything: hands each step's generated tokens (``input_ids[:, prompt_length:]``, on
    the CPU) to ``callback``, so a caller can stream them while ``generate`` runs."""

    def __init__(self, callback: Any, prompt_length: int) -> None:
        self.callback = callback
        self.prompt_length = prompt_length

    def __call__(  # type: ignore[override]
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.BoolTensor:
        self.callback(input_ids[:, self.prompt_length :].cpu())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class StopAtLength(StoppingCriteria):
    """Finish row ``r`` once it has generated ``caps[r]`` tokens (None: no cap)."""

    def __init__(self, caps: Sequence[int | None], prompt_length: int) -> None:
        self.caps = torch.tensor([cap if cap is not None else 2**62 for cap in caps], dtype=torch.long)
        self.prompt_length = prompt_length

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        return self.caps.to(input_ids.device) <= generated  # type: ignore[return-value]
