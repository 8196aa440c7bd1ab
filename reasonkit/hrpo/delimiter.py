"""Where the thinking span ends: an incremental detector of the answer delimiter in generated text.

HRPO mixes hidden vectors into the inputs only while the model is "thinking", i.e. until the answer
delimiter has appeared in the generated text (``####`` in the reference; the built-in model's compact
pack ends every chain of thought with ``The answer is N``, so its delimiter is ``The answer is``).
A delimiter may span several tokens (the built-in tokenizer is character-level: 13 tokens), and a
token's text depends on its neighbours (byte-level BPE splits characters, SentencePiece drops a
leading space), so the detector compares on *decoded text*, never per token.

It is incremental: each step decodes only a tail window of each still-thinking row — enough tokens to
cover the delimiter (a token decodes to at least one byte, a character is at most 4 bytes) — instead
of re-decoding the whole generation (the reference's per-step ``batch_decode`` is quadratic in the
length). The delimiter is found at the step whose token completes it, because an occurrence that ended
earlier would have been found then.

The thinking flag of generated token k is True iff the delimiter is not in the text of tokens 0..k:
the token that completes the delimiter is already fed pure, and so is everything after it
(reference ``generation/utils.py:3374-3381``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DelimiterDetector:
    """Per-row state: ``found_at[row]`` is the index of the generated token that completed the
    delimiter (None while the row is still thinking)."""

    def __init__(self, tokenizer: Any, delimiter: str, batch_size: int) -> None:
        if not delimiter:
            raise ValueError(
                "the answer delimiter must be a non-empty string, e.g. 'The answer is' or '####'"
            )
        self.tokenizer = tokenizer
        self.delimiter = delimiter
        self.window = 4 * len(delimiter) + 8
        self.generated: list[list[int]] = [[] for _ in range(batch_size)]
        self.found_at: list[int | None] = [None] * batch_size

    def update(self, tokens: Sequence[int], active: Sequence[bool] | None = None) -> list[bool]:
        """Append one token per row (rows with ``active`` False are skipped: finished rows) and return
        each row's thinking flag for the token just appended."""
        rows = []
        for r, token in enumerate(tokens):
            if active is not None and not active[r]:
                continue
            self.generated[r].append(int(token))
            if self.found_at[r] is None:
                rows.append(r)
        if rows:
            tails = [self.generated[r][-self.window :] for r in rows]
            texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False)
            for r, text in zip(rows, texts):
                if self.delimiter in text:
                    self.found_at[r] = len(self.generated[r]) - 1
        return [self.thinking(r) for r in range(len(tokens))]

    def thinking(self, row: int) -> bool:
        """Whether the row's latest token was generated before the delimiter was complete."""
        return self.found_at[row] is None


def thinking_flags(tokenizer: Any, delimiter: str, tokens: Sequence[int]) -> list[bool]:
    """The thinking flag of every generated token of one row, from scratch (the reference rule:
    True iff the delimiter is not in the decoded text of the tokens up to and including it)."""
    detector = DelimiterDetector(tokenizer, delimiter, 1)
    return [detector.update([t])[0] for t in tokens]


def count_delimiters(text: str, delimiter: str) -> int:
    """Non-overlapping occurrences of the delimiter in a completion's text (the reward needs one)."""
    return text.count(delimiter)
