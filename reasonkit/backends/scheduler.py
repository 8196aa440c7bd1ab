"""The model thread of ``reasonkit serve``: fair, batched, cancellable generation.

Each HTTP request becomes a :class:`Ticket` whose prompts are cut into units of at most
``unit_prompts`` prompts. One thread drives the model in rounds: a round takes the next unit of
every live ticket (round-robin, and within a round the tickets with the least work left first, so a
small request waits for at most the unit already running instead of all of a large one), merges units with equal sampling parameters into one
``generate`` call (at most ``max_prompts`` prompts; concurrent clients share forwards), runs them,
and hands each ticket its rows. A ticket that is cancelled — its client disconnected, its deadline
passed — loses its remaining units at the next round; at most the unit running then is wasted.
When idle, the thread waits ``max_wait_s`` for more requests to batch with the first.

A ticket with ``on_tokens`` (a streaming request) is told, after every decoding step of its units,
the tokens generated so far per (prompt, sample), when the backend's ``generate`` takes
``on_tokens`` (HFBackend); other tickets in the same call are unaffected.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from reasonkit.backends.base import BackendError, LanguageModel
from reasonkit.types import Completion, Prompt, SamplingParams

#: A prompt given as token ids (a tuple, so it is never mistaken for a list of chat messages).
TokenIds = tuple[int, ...]
#: ``on_tokens(prompt index within the ticket, sample index, generated ids so far)``
OnTokens = Callable[[int, int, list[int]], None]
logger = logging.getLogger("reasonkit.serve")


def streams_tokens(backend: Any) -> bool:
    """Whether ``backend.generate`` reports tokens as they are generated (an ``on_tokens`` keyword)."""
    try:
        return "on_tokens" in inspect.signature(backend.generate).parameters
    except (TypeError, ValueError, AttributeError):
        return False


class Cancelled(BackendError):
    """The request's client went away or its deadline passed; its remaining work was dropped."""


@dataclass(eq=False)
class Ticket:
    """One request's work: its prompts, parameters, deadline and the future its handler waits on."""

    prompts: list[Prompt | TokenIds]
    params: SamplingParams
    deadline: float
    future: Future[list[list[Completion]]] = field(default_factory=Future)
    reason: str = ""  # why it was cancelled
    on_tokens: OnTokens | None = None  # streaming: told the tokens so far after every step
    _pending: deque[int] = field(default_factory=deque)  # start index of each unit not yet run
    _results: dict[int, list[list[Completion]]] = field(default_factory=dict)
    _remaining: int = 0

    def cancel(self, reason: str) -> None:
        """Drop the work not yet started (the handler stops waiting on its own)."""
        if not self.reason:
            self.reason = reason

    @property
    def live(self) -> bool:
        return not self.reason and time.monotonic() < self.deadline and not self.future.done()


class Scheduler:
    """Drives ``backend`` from one thread; :meth:`submit` returns a Ticket whose future holds the rows."""

    def __init__(
        self,
        backend: LanguageModel,
        *,
        max_wait_s: float = 0.005,
        max_prompts: int = 256,
        unit_prompts: int = 8,
    ) -> None:
        self.backend = backend
        self.streams = streams_tokens(backend)
        self.max_wait_s = max_wait_s
        self.max_prompts = max_prompts
        self.unit_prompts = max(1, unit_prompts)
        self.calls = 0  # generate calls made, for tests and monitoring
        self.units_run = 0
        self._tickets: deque[Ticket] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="reasonkit-serve-model", daemon=True)
        self._thread.start()

    def submit(
        self,
        prompts: Sequence[Prompt | TokenIds],
        params: SamplingParams,
        deadline: float,
        on_tokens: OnTokens | None = None,
    ) -> Ticket:
        ticket = Ticket(list(prompts), params, deadline, on_tokens=on_tokens)
        starts = range(0, len(ticket.prompts), self.unit_prompts)
        ticket._pending.extend(starts)
        ticket._remaining = len(starts)
        with self._cond:
            if self._closing:
                ticket.future.set_exception(BackendError("the server is shutting down"))
                return ticket
            self._tickets.append(ticket)
            self._cond.notify()
        return ticket

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # ---- the model thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._tickets and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
            time.sleep(self.max_wait_s)  # let concurrent requests arrive to share this round
            for params, encoded, units in self._round():
                self._run_group(params, encoded, units)
        with self._cond:
            for ticket in self._tickets:
                if not ticket.future.done():
                    ticket.future.set_exception(BackendError("the server is shutting down"))
            self._tickets.clear()

    def _round(self) -> list[tuple[SamplingParams, bool, list[tuple[Ticket, int]]]]:
        """One unit of every live ticket, grouped by (params, token-id prompts), groups capped in size."""
        groups: dict[tuple[SamplingParams, bool], list[list[tuple[Ticket, int]]]] = {}
        with self._cond:
            for ticket in list(self._tickets):
                if not ticket.live:
                    self._tickets.remove(ticket)
                    if not ticket.future.done():
                        why = ticket.reason or "its deadline passed"
                        ticket.future.set_exception(Cancelled(f"request cancelled: {why}"))
                    continue
                start = ticket._pending.popleft()
                if not ticket._pending:
                    self._tickets.remove(ticket)
                size = min(self.unit_prompts, len(ticket.prompts) - start)
                key = (ticket.params, isinstance(ticket.prompts[start], tuple))
                batches = groups.setdefault(key, [[]])
                if (
                    sum(min(self.unit_prompts, len(t.prompts) - s) for t, s in batches[-1]) + size
                    > self.max_prompts
                ):
                    batches.append([])
                batches[-1].append((ticket, start))
        runs = [(params, encoded, units) for (params, encoded), b in groups.items() for units in b if units]
        # Shortest first: the group whose tickets have the least work left runs first in the round,
        # so a small request waits for at most the unit already running.
        runs.sort(key=lambda run: min(len(t._pending) for t, _ in run[2]))
        return runs

    def _run_group(self, params: SamplingParams, encoded: bool, units: list[tuple[Ticket, int]]) -> None:
        spans = [(t, s, min(s + self.unit_prompts, len(t.prompts))) for t, s in units]
        prompts = list(itertools.chain.from_iterable(t.prompts[s:e] for t, s, e in spans))
        try:
            self.calls += 1
            self.units_run += len(units)
            generate: Any = self.backend.generate_encoded if encoded else self.backend.generate  # type: ignore[attr-defined]
            tap = self._tap(spans)
            results = (
                generate(prompts, params, on_tokens=tap) if tap is not None else generate(prompts, params)
            )
        except Exception as exc:
            for ticket, _, _ in spans:
                ticket.cancel(f"generation failed: {type(exc).__name__}: {exc}")
                if not ticket.future.done():
                    ticket.future.set_exception(exc)
                with self._cond:
                    if ticket in self._tickets:
                        self._tickets.remove(ticket)
            return
        offset = 0
        for ticket, start, end in spans:
            ticket._results[start] = results[offset : offset + end - start]
            offset += end - start
            ticket._remaining -= 1
            if ticket._remaining == 0 and not ticket.future.done():
                rows = [row for s in sorted(ticket._results) for row in ticket._results[s]]
                ticket.future.set_result(rows)

    def _tap(self, spans: list[tuple[Ticket, int, int]]) -> Any:
        """An ``on_tokens`` for the merged call that tells each streaming ticket its own rows (None: none streams)."""
        if not self.streams or not any(t.on_tokens is not None for t, _, _ in spans):
            return None
        owners: list[tuple[Ticket, int]] = []  # merged prompt index -> (ticket, its prompt index)
        for ticket, start, end in spans:
            owners.extend((ticket, k) for k in range(start, end))

        def tap(keys: list[tuple[int, int]], tokens: list[list[int]]) -> None:
            for (i, j), ids in zip(keys, tokens):
                ticket, k = owners[i]
                if ticket.on_tokens is not None and ticket.live:
                    try:
                        ticket.on_tokens(k, j, ids)
                    except Exception:  # a listener's bug must not fail the batch
                        logger.exception("a streaming listener failed")
                        ticket.on_tokens = None

        return tap
