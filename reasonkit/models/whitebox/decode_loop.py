"""A plain batched decode loop over a :class:`~.handle.WhiteBoxLM`, with hooks for methods.

transformers' ``generate`` owns the step from logits to the next input, which is exactly what
Think-at-Hard (extra latent passes before a token is chosen) and HRPO (a mixed input embedding after
it is chosen) change. This loop is ``generate``'s greedy / sampled decoding written out — left-padded
prompts, one cache, the same per-row samplers and stop strings as HFBackend
(:mod:`reasonkit.models.sampling`), rows that finish keep being fed the pad token — with two hooks:

- :meth:`DecodeHooks.refine`: given a pass's output and the next-token logits, return the logits to
  choose from (Think-at-Hard runs its deeper passes here);
- :meth:`DecodeHooks.next_inputs`: given the chosen tokens, return the embeddings to feed next, or
  None for their plain embeddings (HRPO mixes in the sampling distribution's projection here).

With no hooks it gives the same greedy tokens as ``generate`` (tested).

    >>> rows = decode(lm, [[1, 5, 9], [1, 7]], max_new_tokens=16, eos_ids={2})   # doctest: +SKIP
    >>> rows[0].tokens, rows[0].finish_reason                                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from reasonkit.models.sampling import StopOnStrings, token_processors
from reasonkit.models.whitebox.handle import WhiteBoxLM, WhiteBoxOutput


@dataclass
class DecodeStep:
    """What the hooks see at each step.

    ``index``: how many tokens each row has generated before this choice (0 after the prompt).
    ``output``: the pass that produced the logits (the prompt's prefill when ``index == 0``: its
    ``hidden`` covers every prompt column; afterwards one column). ``logits``: (B, V) next-token
    logits of each row's last column. ``attention_mask``: (B, T) of that pass. ``finished``: (B,)
    rows that already ended (their choice is replaced by the pad token).
    """

    index: int
    output: WhiteBoxOutput
    logits: torch.Tensor
    attention_mask: torch.Tensor
    finished: torch.Tensor


class DecodeHooks:
    """No-op hooks; a method subclasses and overrides what it changes."""

    #: intermediate hidden states every depth-0 pass should return (see ``WhiteBoxLM.forward``)
    hidden_states: Sequence[int] = ()

    def refine(self, lm: WhiteBoxLM, step: DecodeStep) -> torch.Tensor:
        """The logits (B, V) the next token is chosen from (default: the pass's own)."""
        return step.logits

    def next_inputs(self, lm: WhiteBoxLM, step: DecodeStep, tokens: torch.Tensor) -> torch.Tensor | None:
        """Embeddings (B, hidden) to feed for the chosen ``tokens`` (B,), or None for ``lm.embed(tokens)``."""
        return None

    def row_meta(self, row: int, generated: int) -> dict[str, Any]:
        """What to record about row ``row``'s ``generated`` tokens once decoding ends (``DecodedRow.meta``;
        HFBackend passes it on as ``Completion.meta``). Think-at-Hard records each token's depth."""
        return {}

    def score_logits(
        self,
        lm: WhiteBoxLM,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        path: Sequence[int] | None,
        first_scored: int,
    ) -> torch.Tensor:
        """(B, T, V) logits of a whole right-padded batch (B, T), for scoring continuations; positions
        before ``first_scored`` predict the shared prefix. Default: one plain forward."""
        out = lm.forward(lm.embed(ids), attention_mask=attention_mask, path=path, use_cache=False)
        return lm.logits(out.hidden)


@dataclass
class DecodedRow:
    """One row's result: ``tokens`` generated up to and including the EOS or the token that completed
    a stop string (or all ``max_new_tokens``); ``finish_reason`` "stop" or "length"; ``meta`` what the
    hooks recorded about the row (:meth:`DecodeHooks.row_meta`)."""

    tokens: list[int]
    finish_reason: str
    meta: dict[str, Any] = field(default_factory=dict)


def decode(
    lm: WhiteBoxLM,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int | Sequence[int],
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generators: Sequence[torch.Generator] | None = None,
    eos_ids: Collection[int] = (),
    stop: Sequence[str] = (),
    pad_id: int = 0,
    path: Sequence[int] | None = None,
    hooks: DecodeHooks | None = None,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    on_step: Callable[[torch.Tensor], None] | None = None,
) -> list[DecodedRow]:
    """Decode every prompt (token ids) as one left-padded batch.

    ``max_new_tokens`` is one budget or one per row; ``temperature`` > 0 samples with one generator
    per row (:func:`reasonkit.models.sampling.row_generator`), 0 decodes greedily; ``stop`` strings
    need ``lm.tokenizer``; ``path`` is the layer path every pass runs; ``presence_penalty`` /
    ``frequency_penalty`` are OpenAI's, on the generated tokens (:func:`~reasonkit.models.sampling.token_processors`);
    ``on_step`` gets the generated tokens so far (B, steps) on the CPU after every step (streaming).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("decode needs at least one prompt and no empty prompt")
    hooks = hooks or DecodeHooks()
    B = len(prompts)
    budgets = [max_new_tokens] * B if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(budgets) != B or any(b < 0 for b in budgets):
        raise ValueError(
            f"max_new_tokens must be >= 0, one value or one per prompt ({B}), got {max_new_tokens}"
        )
    if temperature > 0 and (generators is None or len(generators) != B):
        raise ValueError("sampling (temperature > 0) needs one torch.Generator per prompt")
    width = max(len(p) for p in prompts)
    processors = token_processors(
        prompt_length=width,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generators=generators if temperature > 0 else None,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
    )
    device = lm.device
    ids = torch.full((B, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((B, width), dtype=torch.long, device=device)
    for r, prompt in enumerate(prompts):
        ids[r, width - len(prompt) :] = torch.tensor(list(prompt), device=device)
        mask[r, width - len(prompt) :] = 1
    stopper = StopOnStrings(lm.tokenizer, stop, width, B) if stop else None
    ends: list[int | None]  # generated length at which each row stopped
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)

    cache = lm.new_cache(B, path)
    output = lm.forward(lm.embed(ids), attention_mask=mask, cache=cache, hidden_states=hooks.hidden_states)
    step_mask = mask
    finished = torch.tensor([b == 0 for b in budgets], device=device)
    ends = [0 if b == 0 else None for b in budgets]
    for index in range(max(budgets)):
        step = DecodeStep(index, output, lm.logits(output.hidden[:, -1]).float(), step_mask, finished)
        logits = hooks.refine(lm, step)
        if processors:
            logits = processors(ids, logits)  # type: ignore[arg-type]  # penalised; one-hot if sampling
        tokens = logits.argmax(-1)
        tokens = torch.where(finished, torch.full_like(tokens, pad_id), tokens)
        ids = torch.cat([ids, tokens[:, None]], dim=1)
        generated = index + 1
        for r in range(B):
            if ends[r] is None and not bool(finished[r]):
                hit_eos = bool(eos.numel()) and bool((tokens[r] == eos).any())
                if hit_eos or generated >= budgets[r]:
                    ends[r] = generated
        if on_step is not None:
            on_step(ids[:, width:].cpu())
        if stopper is not None:
            stopper(ids, logits)
            for r, at in enumerate(stopper.stopped_at):
                if at is not None and ends[r] is None:
                    ends[r] = at
        finished = torch.tensor([e is not None for e in ends], device=device)
        if bool(finished.all()):
            break
        embeds = hooks.next_inputs(lm, step, tokens)
        step_embeds = lm.embed(tokens[:, None]) if embeds is None else embeds[:, None].to(lm.dtype)
        step_mask = torch.ones((B, 1), dtype=torch.long, device=device)
        output = lm.forward(
            step_embeds, attention_mask=step_mask, cache=cache, hidden_states=hooks.hidden_states
        )
    rows = []
    for r in range(B):
        stopped_at = ends[r]
        end = stopped_at if stopped_at is not None else ids.shape[1] - width
        tokens_out = ids[r, width : width + end].tolist()
        reason = (
            "length" if end >= budgets[r] and not _ended_by_stop(tokens_out, eos_ids, stopper, r) else "stop"
        )
        rows.append(DecodedRow(tokens_out, reason, hooks.row_meta(r, len(tokens_out))))
    return rows


def _ended_by_stop(
    tokens: list[int], eos_ids: Collection[int], stopper: StopOnStrings | None, row: int
) -> bool:
    if tokens and tokens[-1] in eos_ids:
        return True
    return stopper is not None and stopper.stopped_at[row] == len(tokens)
