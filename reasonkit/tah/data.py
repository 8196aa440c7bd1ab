"""Training text and labels for Think-at-Hard: arith chains of thought and a fixed model's mistakes.

Text: the arith task's CoT pairs (``<q>QUESTION<cot>`` -> the gold steps and answer), drawn from a
problem set (:data:`reasonkit.tasks.arith.PROBLEM_SETS`); pair ``i`` depends only on (split, seed, i), so a resumed run
regenerates exactly the pairs it has not seen. Each sequence is the prompt as the backend encodes it
(BOS included) followed by the target's tokens; ``targets[t]`` is token t + 1 where that token
belongs to the target, IGNORE elsewhere — position t predicts it, and is the one that may iterate.

Labels (:func:`oracle_depths`): a *fixed* reference model reads the gold text once, teacher-forced;
position t is hard when its greedy prediction differs from the gold next token (the reference's
top-1 rule, script/preparation/label.py:203-220). Hard positions get the most passes, the others
one. The reference stays fixed while the backbone trains: the paper's on-policy oracle collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reasonkit.tasks import arith
from reasonkit.tasks.arith import problem_config

IGNORE = -100


def cot_pairs(problems: str, split: str, seed: int, start: int, n: int) -> list[tuple[str, str]]:
    """Pairs ``start .. start + n - 1`` of the CoT stream (compact pack)."""
    pairs = arith.training_examples(
        split, n=n, seed=seed, start=start, mixture={"cot": 1.0}, config=problem_config(problems)
    )
    return [(str(p), t) for p, t in pairs]


@dataclass
class TextBatch:
    """Right-padded token ids (B, T), ``targets`` (B, T) and the mask (None: no padding)."""

    input_ids: torch.Tensor
    targets: torch.Tensor
    attention_mask: torch.Tensor | None

    def to(self, device: torch.device) -> TextBatch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return TextBatch(self.input_ids.to(device), self.targets.to(device), mask)


def encode_pairs(backend: Any, pairs: Sequence[tuple[str, str]]) -> TextBatch:
    """Token ids of prompt + target per pair, right-padded with the backend's pad token."""
    tokenizer = backend.tokenizer
    rows, starts = [], []
    for prompt, target in pairs:
        head = backend.encode(prompt)
        rows.append(head + list(tokenizer(target, add_special_tokens=False)["input_ids"]))
        starts.append(len(head))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, start) in enumerate(zip(rows, starts)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        targets[i, start - 1 : len(row) - 1] = ids[i, start : len(row)]
    # right padding: no real token ever looks at a pad, so the fast unmasked kernels serve
    return TextBatch(ids, targets, None if bool(mask.all()) else mask)


@torch.no_grad()
def oracle_depths(reference: Any, batch: TextBatch, max_depth: int) -> torch.Tensor:
    """(B, T) passes per position: ``max_depth`` where the reference's greedy next token is wrong on a
    target position, 1 elsewhere. ``reference`` is a causal LM (transformers interface)."""
    logits = reference(input_ids=batch.input_ids, use_cache=False).logits  # right padding: no mask needed
    hard = (logits.argmax(-1) != batch.targets) & (batch.targets != IGNORE)
    return 1 + hard.long() * (max_depth - 1)
