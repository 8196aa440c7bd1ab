"""HRPO rollouts: G sampled completions per prompt in one left-padded batch, with the hybrid input.

The decode runs through the white-box loop (:func:`reasonkit.models.whitebox.decode`); HRPO lives in
its two hooks (:class:`HybridHooks`):

- ``refine`` keeps the step's tempered log-probabilities log softmax(z/τ) (B, V), so the log-prob ℓ
  of each chosen token is recorded on the fly;
- ``next_inputs`` builds the next input of every row: the sampled token's embedding ê, mixed while
  the row is still thinking with h = Eᵀp/‖p‖₂, p the sampling distribution softmax(top-k(z/τ))
  (:func:`~reasonkit.hrpo.gate.project_distribution`), or — the collapse ablation — with the raw last
  hidden state. The delimiter detector (:mod:`.delimiter`) switches a row to plain inputs from the
  token that completes the answer delimiter on.

Position alignment (deep notes §2.2): the input at the column of generated token x_k is mixed with
h_k, the projection of the distribution x_k was drawn from; the prompt's inputs and the last token
(never fed) are plain. :class:`Rollout` stores what the teacher-forced loss forward needs to rebuild
exactly the inputs the decode fed: token ids, the attention mask and rotary positions of the padded
batch, the thinking mask and h per column, and the recorded ℓ (float32).

Greedy evaluation uses the same hooks with ``record=False``: h is built with the *training* τ and
top-k even though the token is the argmax (as the reference evaluates; the τ comes from the
checkpoint's config, not a folder name).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reasonkit.hrpo.delimiter import DelimiterDetector
from reasonkit.hrpo.gate import HybridInput, hidden_share, project_distribution
from reasonkit.models.sampling import sampling_warpers
from reasonkit.models.whitebox import DecodedRow, DecodeHooks, DecodeStep, WhiteBoxLM, decode

#: where h comes from: the projected sampling distribution (HRPO) or the raw last hidden state
HIDDEN_SOURCES = ("projection", "last_hidden")


class HybridHooks(DecodeHooks):
    """Decode hooks that feed HRPO's hybrid inputs (``mixer`` None: plain inputs, GRPO) and, with
    ``record``, keep per step what :func:`collect` turns into a :class:`Rollout`."""

    def __init__(
        self,
        mixer: HybridInput | None,
        tokenizer: Any,
        *,
        temperature: float,
        top_k: int,
        delimiter: str,
        hidden_source: str = "projection",
        record: bool = False,
    ) -> None:
        if hidden_source not in HIDDEN_SOURCES:
            raise ValueError(f"hidden_source must be one of {HIDDEN_SOURCES}, got {hidden_source!r}")
        self.mixer = mixer
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.warpers = sampling_warpers(temperature, top_k)
        self.delimiter = delimiter
        self.hidden_source = hidden_source
        self.record = record
        self._reset(0)

    def _reset(self, batch: int) -> None:
        self.detector = DelimiterDetector(self.tokenizer, self.delimiter, batch)
        self.logprobs: list[torch.Tensor] = []  # per step (B,) ℓ of the chosen token
        self.hidden: list[torch.Tensor] = []  # per step (B, H) h of the chosen token's distribution
        self.thinking: list[torch.Tensor] = []  # per step (B,) bool: the chosen token is fed mixed
        self.shares: list[torch.Tensor] = []  # per step (B,) mean hidden share sqrt(1 - a²) over H
        self._last_logp: torch.Tensor | None = None

    def refine(self, lm: WhiteBoxLM, step: DecodeStep) -> torch.Tensor:
        if step.index == 0:  # a new decode call (HFBackend decodes batch after batch)
            self._reset(step.logits.shape[0])
        if self.record:
            self._last_logp = torch.log_softmax(step.logits.float() / self.temperature, dim=-1)
        return step.logits

    def next_inputs(self, lm: WhiteBoxLM, step: DecodeStep, tokens: torch.Tensor) -> torch.Tensor | None:
        active = (~step.finished).tolist()
        thinking = torch.tensor(self.detector.update(tokens.tolist(), active), device=tokens.device)
        if self.record:
            assert self._last_logp is not None
            self.logprobs.append(self._last_logp.gather(1, tokens[:, None])[:, 0])
            self.thinking.append(thinking)
        if self.mixer is None:
            return None
        hidden = self.hidden_vectors(lm, step)
        embeds = lm.embed(tokens)  # (B, H)
        mixed, a = self.mixer(embeds, hidden)
        if self.record:
            self.hidden.append(hidden.float())
            self.shares.append(hidden_share(a.float()).mean(-1))
        return torch.where(thinking[:, None], mixed, embeds)

    def hidden_vectors(self, lm: WhiteBoxLM, step: DecodeStep) -> torch.Tensor:
        """h (B, H) for the tokens just chosen from ``step``'s logits."""
        if self.hidden_source == "last_hidden":
            return step.output.hidden[:, -1]
        probs = torch.softmax(self.warpers(None, step.logits.float()), dim=-1)  # type: ignore[arg-type]
        return project_distribution(probs, lm.embedding_matrix)

    def final_logprobs(self, rows: Sequence[DecodedRow]) -> torch.Tensor:
        """ℓ of the last step's tokens (the loop ends before feeding them, so no next_inputs call)."""
        assert self._last_logp is not None
        index = len(self.logprobs)
        last = [row.tokens[index] if len(row.tokens) > index else 0 for row in rows]
        return self._last_logp.gather(1, torch.tensor(last, device=self._last_logp.device)[:, None])[:, 0]


@dataclass
class Rollout:
    """One left-padded batch of prompts + completions, column-aligned (B rows, T columns).

    ``input_ids``, ``attention_mask`` (1 = real token, 0 = left pad of the prompt or right pad after
    the completion), ``position_ids`` (real tokens before each column: the decode's rotary positions),
    ``completion_mask`` (the generated tokens), ``thinking`` (columns fed the hybrid input), ``hidden``
    (B, T, H) h at those columns (zeros elsewhere; None for plain inputs), ``logprobs`` (B, T) the ℓ
    recorded while decoding, at the completion columns; ``shares`` (B,) each row's mean hidden share
    over its thinking tokens; ``prompt_width`` the column of the first generated token.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    completion_mask: torch.Tensor
    thinking: torch.Tensor
    hidden: torch.Tensor | None
    logprobs: torch.Tensor
    shares: torch.Tensor
    prompt_width: int
    completions: list[list[int]]
    finish_reasons: list[str]

    @property
    def lengths(self) -> list[int]:
        return [len(c) for c in self.completions]

    def to(self, device: torch.device) -> Rollout:
        moved: dict[str, Any] = {
            name: value.to(device) for name, value in vars(self).items() if isinstance(value, torch.Tensor)
        }
        return dataclasses.replace(self, **moved)

    def select(self, rows: slice) -> Rollout:
        """The rows ``rows`` (every column kept)."""
        picked: dict[str, Any] = {
            name: value[rows] for name, value in vars(self).items() if isinstance(value, (torch.Tensor, list))
        }
        return dataclasses.replace(self, **picked)


def rollout_generator(seed: int, step: int, prompt: int, sample: int) -> torch.Generator:
    """The CPU generator of one sampled completion: a function of (seed, step, global prompt index,
    sample index) only, so a row draws the same tokens in whichever process and batch it runs."""
    digest = hashlib.blake2b(
        f"reasonkit.hrpo:{seed}:{step}:{prompt}:{sample}".encode(), digest_size=8
    ).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


@torch.no_grad()
def sample(
    lm: WhiteBoxLM,
    hooks: HybridHooks,
    prompts: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    *,
    max_new_tokens: int,
    top_k: int,
    eos_ids: Sequence[int],
    stop: Sequence[str],
    pad_id: int,
) -> Rollout:
    """Decode every prompt once (repeat a prompt G times for a group) and collect the :class:`Rollout`."""
    if not hooks.record:
        raise ValueError("sample() needs HybridHooks(record=True)")
    rows = decode(
        lm,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=hooks.temperature,
        top_k=top_k,
        generators=generators,
        eos_ids=set(eos_ids),
        stop=stop,
        pad_id=pad_id,
        hooks=hooks,
    )
    return collect(lm, hooks, prompts, rows, pad_id)


def collect(
    lm: WhiteBoxLM,
    hooks: HybridHooks,
    prompts: Sequence[Sequence[int]],
    rows: Sequence[DecodedRow],
    pad_id: int,
) -> Rollout:
    """Assemble the padded batch from the prompts, the decoded rows and what the hooks recorded."""
    B = len(prompts)
    width = max(len(p) for p in prompts)
    longest = max(len(r.tokens) for r in rows)
    T = width + longest
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    completion = torch.zeros((B, T), dtype=torch.bool)
    for r, (prompt, row) in enumerate(zip(prompts, rows)):
        ids[r, width - len(prompt) : width] = torch.tensor(list(prompt))
        ids[r, width : width + len(row.tokens)] = torch.tensor(row.tokens, dtype=torch.long)
        mask[r, width - len(prompt) : width + len(row.tokens)] = 1
        completion[r, width : width + len(row.tokens)] = True
    positions = (mask.cumsum(1) - mask).clamp_min(0)
    steps = len(hooks.logprobs)
    logp_steps = [*hooks.logprobs, hooks.final_logprobs(rows)]  # longest + 0 or 1 entries
    logprobs = torch.zeros((B, T), dtype=torch.float32)
    recorded = torch.stack([x.float().cpu() for x in logp_steps], dim=1)[:, :longest]  # (B, n)
    logprobs[:, width:] = recorded
    thinking = torch.zeros((B, T), dtype=torch.bool)
    if steps:
        flags = torch.stack([x.cpu() for x in hooks.thinking], dim=1)[:, : longest - 1]  # last token: plain
        thinking[:, width : width + flags.shape[1]] = flags
    thinking &= completion
    hidden = None
    shares = torch.zeros(B)
    if hooks.mixer is not None and steps:
        h = torch.stack([x.cpu() for x in hooks.hidden], dim=1)[:, : longest - 1]  # (B, n - 1, H)
        hidden = torch.zeros((B, T, h.shape[-1]), dtype=torch.float32)
        hidden[:, width : width + h.shape[1]] = h
        hidden *= thinking[..., None]
        share = torch.stack([x.cpu() for x in hooks.shares], dim=1)[:, : longest - 1]  # (B, n - 1)
        flags = thinking[:, width : width + share.shape[1]]
        shares = (share * flags).sum(1) / flags.sum(1).clamp_min(1)
    logprobs *= completion
    return Rollout(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        completion_mask=completion,
        thinking=thinking,
        hidden=hidden,
        logprobs=logprobs,
        shares=shares,
        prompt_width=width,
        completions=[list(r.tokens) for r in rows],
        finish_reasons=[r.finish_reason for r in rows],
    )
