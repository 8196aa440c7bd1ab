"""Rewards of (problem, layer path) pairs: greedy decoding under the path, graded by the benchmark's grader.

CoLa's reward (arXiv 2507.07996) is whether the frozen model answers correctly when its forward runs
a given layer path. :class:`PathScorer` computes it for many problems at once: one path per
:func:`~reasonkit.models.whitebox.decode` call, every problem that needs that path in the same
left-padded batch ("path-major"), the answer graded with :func:`reasonkit.answers.grade_and_extract`
(the grader ``reasonkit eval`` uses). Every outcome lands in a :class:`~reasonkit.cola.table.RewardTable`
and a path already there never reaches the model again.

Generation budget: a path that breaks the model often produces text that never ends, and decoding
it to the pack's full budget (400 tokens for the built-in model's chain of thought) would dominate
the search's cost. So each problem's budget is ``budget_factor`` times the tokens its default path
generated (computed first), capped by ``max_new_tokens``. The budget depends only on the problem, so
a reward never depends on which other rows shared its batch.

    >>> scorer = PathScorer(load_backend("builtin"), problems, call="cot")      # doctest: +SKIP
    >>> scorer.score((0, 1, 1, 2, 3, 4, 5, 7), rows=[0, 1, 2])                  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from reasonkit.answers import grade_and_extract
from reasonkit.backends.base import require_whitebox
from reasonkit.backends.request import trim_at_stop
from reasonkit.cola.table import Outcome, RewardTable
from reasonkit.kit.base import batch_sampling, resolve_pack
from reasonkit.models.sampling import row_generator
from reasonkit.models.threads import torch_threads
from reasonkit.models.whitebox.decode_loop import decode
from reasonkit.types import Problem

CALLS = ("cot", "direct")


class PathScorer:
    """Greedy outcomes of problems under layer paths, one batched decode per path (chunks of ``batch_size``).

    ``backend``: an HFBackend over the plain model (``builtin``, an HF id, a directory). ``call``: the
    prompt pack's call that asks the question (``cot`` or ``direct``). ``max_new_tokens``: the cap
    (default: the pack's budget for the call). ``budget_factor``: a problem's budget relative to its
    default path's output (None: no relative budget). ``table``: earlier outcomes (a resumed run).
    """

    def __init__(
        self,
        backend: Any,
        problems: Sequence[Problem],
        *,
        call: str = "cot",
        max_new_tokens: int | None = None,
        budget_factor: float | None = 1.5,
        batch_size: int = 64,
        table: RewardTable | None = None,
        pack: Any = None,
    ) -> None:
        if call not in CALLS:
            raise ValueError(f"call must be one of {CALLS}, got {call!r}")
        if getattr(backend, "path", None) is not None or getattr(backend, "hooks", None) is not None:
            raise ValueError(
                f"{backend.name!r} already runs a changed forward; search over the plain model "
                "(e.g. --model builtin, not layers:...@builtin)"
            )
        if batch_size < 1 or (budget_factor is not None and budget_factor <= 0):
            raise ValueError("batch_size must be >= 1 and budget_factor > 0")
        self.lm = require_whitebox(backend, "chain-of-layers search")
        self.backend = backend
        self.problems = list(problems)
        ungraded = [p.id for p in self.problems if not p.answer.strip()]
        if ungraded:
            raise ValueError(
                f"the search rewards correct answers, so every problem needs a gold answer; {len(ungraded)} "
                f"have none (e.g. {ungraded[:3]})"
            )
        pack = resolve_pack(pack, backend)
        params = batch_sampling(pack, call, self.problems) if self.problems else None
        self.stop: tuple[str, ...] = tuple(params.stop) if params else ()
        self.max_new_tokens = max_new_tokens or (params.max_new_tokens if params else 1)
        self.budget_factor = budget_factor
        #: each problem's prompt as the pack renders it, and its token ids
        self.rendered = [getattr(pack, call)(p) for p in self.problems]
        self.prompts = [list(backend.encode(prompt)) for prompt in self.rendered]
        self.batch_size = batch_size
        self.table = table if table is not None else RewardTable()
        self.default_path: tuple[int, ...] = self.lm.default_path()
        #: decode calls made, rows decoded and seconds spent in them (cached outcomes cost nothing)
        self.calls, self.rows_decoded, self.seconds = 0, 0, 0.0

    @property
    def num_layers(self) -> int:
        return self.lm.num_layers

    def cached(self, row: int, path: Sequence[int]) -> Outcome | None:
        return self.table.get(self.problems[row].id, tuple(path))

    def budget(self, row: int) -> int:
        """New tokens row ``row`` may generate under a path other than the default (needs the default's
        outcome when ``budget_factor`` is set)."""
        cap = self.cap(row)
        if self.budget_factor is None:
            return cap
        reference = self.cached(row, self.default_path)
        if reference is None:
            raise RuntimeError(f"row {row}'s default path has not been scored; score it first")
        return max(1, min(cap, math.ceil(self.budget_factor * reference.tokens)))

    def cap(self, row: int) -> int:
        """The pack's (or ``max_new_tokens``') budget, within the model's context."""
        context = getattr(self.backend, "context_length", None)
        if context is None:
            return self.max_new_tokens
        return max(1, min(self.max_new_tokens, context - len(self.prompts[row])))

    def score(self, path: Sequence[int], rows: Sequence[int]) -> list[Outcome]:
        """The greedy outcome of each row under ``path`` (cached ones from the table, the rest decoded)."""
        path = tuple(path)
        if path != self.default_path and self.budget_factor is not None:
            self._ensure_reference(rows)
        missing = [r for r in dict.fromkeys(rows) if self.cached(r, path) is None]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            budgets = [self.cap(r) if path == self.default_path else self.budget(r) for r in chunk]
            outcomes = self._decode(path, chunk, budgets)
            self.table.put_many([(self.problems[r].id, path, o) for r, o in zip(chunk, outcomes)])
        found = [self.cached(r, path) for r in rows]
        assert all(o is not None for o in found)
        return found  # type: ignore[return-value]

    def sample(self, rows: Sequence[int], n: int, temperature: float, seed: int) -> list[list[Outcome]]:
        """``n`` temperature samples per row on the default path, with the same budgets as the search
        (the pass@K control); sample j of every row uses the generator seeded from (seed, j)."""
        if temperature <= 0 or n < 1:
            raise ValueError("sampling needs temperature > 0 and n >= 1")
        self._ensure_reference(rows)
        pairs = [(r, j) for r in rows for j in range(n)]
        results: dict[tuple[int, int], Outcome] = {}
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            outcomes = self._decode(
                self.default_path,
                [r for r, _ in chunk],
                [self.budget(r) for r, _ in chunk],
                temperature=temperature,
                generators=[row_generator(seed, j) for _, j in chunk],
            )
            results.update(zip(chunk, outcomes))
        return [[results[(r, j)] for j in range(n)] for r in rows]

    def _ensure_reference(self, rows: Sequence[int]) -> None:
        todo = [r for r in rows if self.cached(r, self.default_path) is None]
        if todo:
            self.score(self.default_path, todo)

    def _decode(
        self,
        path: tuple[int, ...],
        rows: Sequence[int],
        budgets: Sequence[int],
        temperature: float = 0.0,
        generators: Sequence[torch.Generator] | None = None,
    ) -> list[Outcome]:
        started = time.perf_counter()
        with torch_threads(getattr(self.backend, "threads", None)), torch.inference_mode():
            decoded = decode(
                self.lm,
                [self.prompts[r] for r in rows],
                max_new_tokens=budgets,
                temperature=temperature,
                generators=generators,
                eos_ids=self.backend.eos_ids,
                stop=self.stop,
                pad_id=self.backend.pad_id,
                path=path,
            )
        self.seconds += time.perf_counter() - started
        self.calls += 1
        self.rows_decoded += len(rows)
        texts = [self._text(row.tokens) for row in decoded]
        problems = [self.problems[r] for r in rows]
        graded = grade_and_extract([(t, p.answer, p.kind) for t, p in zip(texts, problems)])
        return [
            Outcome(bool(ok), answer, len(row.tokens), row.finish_reason)
            for (ok, answer), row in zip(graded, decoded)
        ]

    def _text(self, tokens: list[int]) -> str:
        eos = next((k for k, t in enumerate(tokens) if t in self.backend.eos_ids), None)
        body = tokens if eos is None else tokens[:eos]
        text, _ = trim_at_stop(self.lm.tokenizer.decode(body, skip_special_tokens=True), self.stop)
        return str(text)
