"""Layer paths as move sequences: the search space of chain-of-layers search (CoLa, arXiv 2507.07996).

A *layer path* is the sequence of a frozen model's layers that a forward runs, e.g. ``(0, 1, 1, 2, 4)``
on a 5-layer model: layer 1 twice, layer 3 skipped. The paper's moves are "skip k contiguous layers"
and "repeat a block of k layers", k in 1..4. Here a path is built left to right over the model's
layers, as in the follow-up PoLar's parser (deep notes §3.4): a *cursor* walks the layers, and each
:class:`Move` takes the next ``size`` layers as one block and runs it ``times`` times — 0 skips the
block, 1 keeps it, 2 or more repeats it (``(2, 3) x 2`` -> ``2, 3, 2, 3``). Stopping early keeps
the remaining layers as they are, so the empty move sequence is the model's own path and every
prefix of moves stands for a whole path (:meth:`LayerGrammar.complete`).

Limits (:class:`LayerGrammar`): block sizes up to ``max_block``; every layer used at most
``max_uses`` times (a block runs at most ``max_uses`` times); path length in ``[min_length,
max_length]`` (a move is legal only if some in-bounds path can still be completed after it); which
operations exist (``ops``: the ablations skip-only and repeat-only); and ``block_moves="root"``,
PoLar's expansion rule: blocks larger than one layer only as the first move, single layers after.

A path round-trips through its moves: ``grammar.build(grammar.parse(path)) == path``. ``parse``
picks one canonical move sequence among the ways to write a path (fewest moves, then fewest skips,
then most repeats, then larger blocks first — PoLar's tie-break).

    >>> g = LayerGrammar(num_layers=8)
    >>> g.parse((0, 1, 1, 2, 3, 4, 5, 7))
    (keep1, rep1, keep4, skip1, keep1)
    >>> g.build(g.parse((0, 1, 1, 2, 3, 4, 5, 7)))
    (0, 1, 1, 2, 3, 4, 5, 7)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

Path = tuple[int, ...]
OPS = ("skip", "keep", "repeat")


@dataclass(frozen=True, order=True)
class Move:
    """Run the next ``size`` layers ``times`` times: 0 skips them, 1 keeps them, >= 2 repeats them."""

    size: int
    times: int

    @property
    def op(self) -> str:
        return "skip" if self.times == 0 else "keep" if self.times == 1 else "repeat"

    def __str__(self) -> str:
        if self.times >= 2:
            return f"rep{self.size}" + (f"x{self.times}" if self.times > 2 else "")
        return f"{self.op}{self.size}"

    __repr__ = __str__

    @classmethod
    def parse(cls, text: str) -> Move:
        """``"skip2"``, ``"keep1"``, ``"rep3"`` (twice) or ``"rep1x3"`` -> a Move."""
        found = re.fullmatch(r"(skip|keep|rep)([1-9][0-9]*)(?:x([2-9][0-9]*))?", text.strip())
        if found is None or (found[3] and found[1] != "rep"):
            raise ValueError(
                f"{text!r} is not a move; write skipK, keepK, repK or repKxT (e.g. skip2, rep1x3)"
            )
        times = {"skip": 0, "keep": 1}.get(found[1], int(found[3] or 2))
        return cls(int(found[2]), times)


@dataclass(frozen=True)
class PathState:
    """A node of the search: the moves made so far, the cursor (next layer to decide) and the path."""

    moves: tuple[Move, ...] = ()
    cursor: int = 0
    path: Path = ()


@dataclass(frozen=True)
class LayerGrammar:
    """Which layer paths exist for a model of ``num_layers`` layers, and how moves build them."""

    num_layers: int
    max_block: int = 4
    max_uses: int = 2
    min_length: int = 1
    max_length: int | None = None  # None: max_uses * num_layers (no bound beyond the uses)
    ops: tuple[str, ...] = OPS
    block_moves: Literal["everywhere", "root"] = "everywhere"
    _times: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.max_block < 1 or self.max_uses < 1:
            raise ValueError(f"max_block and max_uses must be >= 1, got {self.max_block}, {self.max_uses}")
        unknown = sorted(set(self.ops) - set(OPS))
        if unknown or "keep" not in self.ops:
            raise ValueError(f"ops are a subset of {list(OPS)} that includes keep; got {list(self.ops)}")
        if "repeat" in self.ops and self.max_uses < 2:
            raise ValueError("repeat moves need max_uses >= 2 (a repeated layer is used twice)")
        if self.block_moves not in ("everywhere", "root"):
            raise ValueError(f"block_moves is 'everywhere' or 'root', got {self.block_moves!r}")
        if not 0 <= self.min_length <= self.upper_length:
            raise ValueError(
                f"length bounds [{self.min_length}, {self.upper_length}] are empty; "
                f"the longest path has {self.max_uses * self.num_layers} layers"
            )
        times = [t for t in range(self.max_uses + 1) if OPS[min(t, 2)] in self.ops]
        object.__setattr__(self, "_times", tuple(times))

    # ---- the moves -------------------------------------------------------------------------------
    @property
    def upper_length(self) -> int:
        return self.max_length if self.max_length is not None else self.max_uses * self.num_layers

    @property
    def default_path(self) -> Path:
        return tuple(range(self.num_layers))

    def all_moves(self) -> tuple[Move, ...]:
        """Every move the grammar knows, in a fixed order (the env's action ids)."""
        return tuple(Move(size, t) for size in range(1, self.max_block + 1) for t in self._times)

    def legal_moves(self, state: PathState) -> list[Move]:
        """Moves allowed from ``state``, in :meth:`all_moves` order."""
        return self._legal(state.cursor, len(state.path), not state.moves)

    def _legal(self, cursor: int, length: int, first: bool) -> list[Move]:
        left = self.num_layers - cursor
        biggest = self.max_block if first or self.block_moves == "everywhere" else 1
        return [
            Move(size, t)
            for size in range(1, min(biggest, left) + 1)
            for t in self._times
            if self._feasible(cursor + size, length + size * t)
        ]

    def apply(self, state: PathState, move: Move) -> PathState:
        if move not in self.legal_moves(state):
            raise ValueError(f"move {move} is not legal at cursor {state.cursor} of path {list(state.path)}")
        block = tuple(range(state.cursor, state.cursor + move.size))
        return PathState((*state.moves, move), state.cursor + move.size, state.path + block * move.times)

    def is_terminal(self, state: PathState) -> bool:
        return state.cursor == self.num_layers

    def complete(self, state: PathState) -> Path:
        """The whole path ``state`` stands for: the remaining layers kept once each — or, where the
        length bounds forbid that, skipped (too long) or repeated (too short), earliest layers first."""
        path = state.path
        for layer in range(state.cursor, self.num_layers):
            # times closest to 1 (keep) that can still end in bounds
            preferred = sorted(self._times, key=lambda t: (abs(t - 1), t))
            choice = next(t for t in preferred if self._feasible(layer + 1, len(path) + t))
            path = path + (layer,) * choice
        return path

    def _feasible(self, cursor: int, length: int) -> bool:
        """Whether a path of ``length`` layers so far, with layers ``cursor..`` still to decide, can end
        within the length bounds (every sum of per-layer times between the extremes is reachable)."""
        left = self.num_layers - cursor
        lowest, highest = length + min(self._times) * left, length + max(self._times) * left
        return lowest <= self.upper_length and highest >= self.min_length

    # ---- paths <-> moves ---------------------------------------------------------------------------
    def build(self, moves: Sequence[Move | str]) -> Path:
        """The path a move sequence stands for (moves checked; an unfinished sequence is completed)."""
        state = PathState()
        for move in moves:
            state = self.apply(state, move if isinstance(move, Move) else Move.parse(move))
        return self.complete(state)

    def parse(self, path: Sequence[int]) -> tuple[Move, ...]:
        """The canonical move sequence that builds ``path``; ValueError naming why a path is outside the
        grammar (order, uses, length, ops)."""
        path = tuple(int(i) for i in path)
        self.check(path)
        found = _best_parse(self, path, 0, 0, True)
        if found is None:
            raise ValueError(
                f"path {list(path)} cannot be written with this grammar's moves (ops {list(self.ops)}, blocks up to "
                f"{self.max_block} layers{', larger than one only at the root' if self.block_moves == 'root' else ''})"
            )
        return found[1]

    def check(self, path: Sequence[int]) -> None:
        """ValueError when ``path`` breaks an order, use or length limit (cheap checks before parsing)."""
        if any(not 0 <= i < self.num_layers for i in path):
            raise ValueError(f"path {list(path)} names layers outside 0..{self.num_layers - 1}")
        overused = sorted({i for i in path if path.count(i) > self.max_uses})
        if overused:
            raise ValueError(
                f"path {list(path)} uses layers {overused} more than max_uses={self.max_uses} times"
            )
        if not self.min_length <= len(path) <= self.upper_length:
            raise ValueError(
                f"path {list(path)} has {len(path)} layers; this grammar allows {self.min_length}..{self.upper_length}"
            )

    def contains(self, path: Sequence[int]) -> bool:
        try:
            self.parse(path)
        except ValueError:
            return False
        return True

    def enumerate_paths(self, limit: int = 1_000_000) -> list[Path]:
        """Every distinct path of the grammar, sorted by (length, path); ValueError past ``limit``
        (the space grows exponentially with depth: 15,595 paths for 8 layers with the defaults)."""

        @functools.cache
        def suffixes(cursor: int, length: int, first: bool) -> frozenset[Path]:
            if cursor == self.num_layers:
                return frozenset({()})
            found: set[Path] = set()
            for move in self._legal(cursor, length, first):
                block = tuple(range(cursor, cursor + move.size)) * move.times
                found.update(
                    block + rest for rest in suffixes(cursor + move.size, length + len(block), False)
                )
                if len(found) > limit:
                    raise ValueError(f"more than {limit} paths; enumerate a smaller grammar")
            return frozenset(found)

        return sorted(suffixes(0, 0, True), key=lambda p: (len(p), p))

    def states(self, moves: Sequence[Move]) -> Iterator[PathState]:
        """The states a move sequence passes through, the start included."""
        state = PathState()
        yield state
        for move in moves:
            state = self.apply(state, move)
            yield state


def format_path(path: Sequence[int]) -> str:
    """``(0, 1, 1, 2)`` -> ``"0,1,1,2"`` (the ``layers:`` spec's form)."""
    return ",".join(str(i) for i in path)


def read_path(text: str) -> Path:
    """``"0,1,1,2"`` -> ``(0, 1, 1, 2)``; ``""`` is the empty path."""
    try:
        return tuple(int(part) for part in text.split(",")) if text.strip() else ()
    except ValueError:
        raise ValueError(
            f"{text!r} is not a layer path; write comma-separated layer indices, e.g. 0,1,1,2"
        ) from None


_ParseKey = tuple[int, int, int, tuple[int, ...]]


@functools.lru_cache(maxsize=100_000)
def _best_parse(
    grammar: LayerGrammar, path: Path, i: int, cursor: int, first: bool
) -> tuple[_ParseKey, tuple[Move, ...]] | None:
    """Best (key, moves) writing ``path[i:]`` from layer ``cursor``: key = (moves, skips, -repeats,
    -block sizes in order), smallest wins."""
    if cursor == grammar.num_layers:
        return ((0, 0, 0, ()), ()) if i == len(path) else None
    best: tuple[_ParseKey, tuple[Move, ...]] | None = None
    biggest = grammar.max_block if first or grammar.block_moves == "everywhere" else 1
    for size in range(1, min(biggest, grammar.num_layers - cursor) + 1):
        block = tuple(range(cursor, cursor + size))
        for times in grammar._times:
            end = i + size * times
            if path[i:end] != block * times:
                continue
            rest = _best_parse(grammar, path, end, cursor + size, False)
            if rest is None:
                continue
            (moves, skips, negative_repeats, sizes), tail = rest
            key = (moves + 1, skips + (times == 0), negative_repeats - (times >= 2), (-size, *sizes))
            if best is None or key < best[0]:
                best = (key, (Move(size, times), *tail))
    return best
