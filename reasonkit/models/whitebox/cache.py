"""The decoding state of a white-box forward: one slot per (occurrence in the layer path, latent depth).

Stock caches key their state by a module's ``layer_idx``. A layer path that repeats a layer then
writes the same slot twice per forward, a padded batch crashes, and a path that skips layer 0 makes
the cache report length 0 (measured: ../shared/research/whitebox-methods-deep.md §3.3). Here a slot is
addressed by the *occurrence* of a layer in the path, so a repeated layer owns one state per visit,
and by the *latent depth* of the pass (Think-at-Hard runs extra passes over some tokens), and the
sequence length is counted by the cache itself, whatever layers run.

Bookkeeping shared by every slot of a depth — its *entries*, one per token the depth has seen:
  - ``column``: the token's index in the padded batch (pads included), the time axis of causality;
  - ``position``: its rotary position (real tokens before it in its row);
  - ``valid``: False for left padding (depth 0) and for the unused tail of a ragged deeper depth.
A query at (column c, depth d) sees every valid entry of depth d' <= d whose column is <= c
(depth causality: a depth-0 query never sees a deeper key). Slots of attention layers hold the
entries' keys and values; slots of recurrent layers (GLA, sLSTM) hold a state.

Depth 0 stores its entries rectangularly (every row gains every column, pads marked invalid). Deeper
depths are *ragged*: each row keeps only its own real tokens, packed to the front, so a row's deeper
slots grow only when that row re-runs a token — never because another row of the batch did (the
reference Think-at-Hard cache grows every row by a masked entry whenever any row iterates). A deeper
pass may also run over a subset of the batch rows (``rows``): the other rows are neither computed nor
touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

RecurrentState = tuple[torch.Tensor, ...]


def _grow(buffer: torch.Tensor, dim: int, used: int, needed: int) -> torch.Tensor:
    """``buffer`` or a copy with room for ``needed`` entries along ``dim`` (capacity doubles)."""
    if needed <= buffer.shape[dim]:
        return buffer
    shape = list(buffer.shape)
    shape[dim] = max(needed, 2 * buffer.shape[dim], 16)
    grown = buffer.new_zeros(shape)
    grown.narrow(dim, 0, used).copy_(buffer.narrow(dim, 0, used))
    return grown


@dataclass
class _Entries:
    """Columns, rotary positions and validity (B, capacity) of the tokens a depth has seen.

    ``count`` is the used width. Ragged entries (deeper depths) also keep ``row_counts`` (B,): row r's
    entries are its first ``row_counts[r]`` slots, all valid.
    """

    columns: torch.Tensor
    positions: torch.Tensor
    valid: torch.Tensor
    count: int = 0
    row_counts: torch.Tensor | None = None

    def append(self, columns: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> None:
        n = self.count + columns.shape[1]
        self._reserve(n)
        self.columns[:, self.count : n] = columns
        self.positions[:, self.count : n] = positions
        self.valid[:, self.count : n] = valid
        self.count = n

    def append_ragged(
        self, rows: torch.Tensor, columns: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append each row's valid tokens after its own entries; returns (batch index, slot index)
        of every valid token (in row-major order), where its keys/values go."""
        assert self.row_counts is not None
        ahead = self.row_counts.index_select(0, rows)  # (b,)
        dest = ahead[:, None] + valid.long().cumsum(1) - 1  # (b, T): slot of each valid token
        new_counts = ahead + valid.long().sum(1)
        n = max(self.count, int(new_counts.max()) if new_counts.numel() else 0)
        self._reserve(n)
        batch_index = rows[:, None].expand_as(dest)[valid]
        slot_index = dest[valid]
        self.columns[batch_index, slot_index] = columns[valid]
        self.positions[batch_index, slot_index] = positions[valid]
        self.valid[batch_index, slot_index] = True
        self.row_counts = self.row_counts.index_copy(0, rows, new_counts)
        self.count = n
        return batch_index, slot_index

    def _reserve(self, n: int) -> None:
        self.columns = _grow(self.columns, 1, self.count, n)
        self.positions = _grow(self.positions, 1, self.count, n)
        self.valid = _grow(self.valid, 1, self.count, n)

    def select_rows(self, rows: torch.Tensor) -> None:
        self.columns, self.positions, self.valid = (
            x.index_select(0, rows) for x in (self.columns, self.positions, self.valid)
        )
        if self.row_counts is not None:
            self.row_counts = self.row_counts.index_select(0, rows)


@dataclass
class _KV:
    keys: torch.Tensor
    values: torch.Tensor
    count: int = 0


@dataclass
class _Pass:
    """The forward in progress: its depth, the batch rows it runs over (None: all), the depths its
    queries attend (ascending), and where a ragged depth's keys/values go."""

    depth: int
    rows: torch.Tensor | None
    attend: tuple[int, ...]
    columns: torch.Tensor  # (b, T) the pass's columns
    ragged_index: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # batch, slot, valid


class RowState(Protocol):
    """Auxiliary per-batch state a layer keeps in the cache (:meth:`SlotCache.aux`)."""

    def select_rows(self, rows: torch.Tensor) -> None: ...

    def tensors(self) -> list[torch.Tensor]: ...


@dataclass
class SlotCache:
    """Per-(occurrence, depth) keys/values or recurrent states for one batch and one layer path.

    Created by :meth:`WhiteBoxLM.new_cache`; continued by every forward that passes it. ``path`` is
    the layer path it was made for (a forward with another path is refused).
    """

    path: tuple[int, ...]
    batch_size: int
    device: torch.device
    #: depth-0 columns seen so far (pads included): the padded sequence length
    columns: int = 0
    #: (B,) rotary position of each row's next depth-0 token (real tokens seen so far)
    next_positions: torch.Tensor = field(init=False)
    #: per-layer auxiliary state keyed by the layer's code (e.g. GLA's deeper-depth bookkeeping)
    aux: dict[Any, RowState] = field(default_factory=dict, init=False, repr=False)
    _entries: dict[int, _Entries] = field(default_factory=dict, init=False, repr=False)
    _kv: dict[tuple[int, int], _KV] = field(default_factory=dict, init=False, repr=False)
    _states: dict[tuple[int, int], RecurrentState] = field(default_factory=dict, init=False, repr=False)
    _pass: _Pass | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = tuple(int(i) for i in self.path)
        self.next_positions = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)

    @property
    def depths(self) -> list[int]:
        """The depths that have entries, ascending."""
        return sorted(self._entries)

    def entries(self, depth: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(columns, positions, valid), each (B, n), of the tokens ``depth`` has seen."""
        e = self._entries.get(depth)
        if e is None:
            empty = torch.zeros(self.batch_size, 0, dtype=torch.long, device=self.device)
            return empty, empty, empty.bool()
        return e.columns[:, : e.count], e.positions[:, : e.count], e.valid[:, : e.count]

    def row_counts(self, depth: int) -> torch.Tensor:
        """(B,) how many entries each row holds at ``depth`` (depth 0: every column, pads included)."""
        e = self._entries.get(depth)
        if e is None:
            return torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
        if e.row_counts is None:
            return torch.full((self.batch_size,), e.count, dtype=torch.long, device=self.device)
        return e.row_counts.clone()

    def attending(self, depth: int) -> tuple[int, ...]:
        """The depths the forward in progress attends to (default 0..``depth``)."""
        return self._pass.attend if self._pass is not None else tuple(range(depth + 1))

    @property
    def pass_columns(self) -> torch.Tensor:
        """(b, T) the columns of the forward in progress."""
        if self._pass is None:
            raise RuntimeError("no forward is in progress on this cache")
        return self._pass.columns

    @property
    def rows(self) -> torch.Tensor | None:
        """The batch rows the forward in progress runs over (None: every row)."""
        return None if self._pass is None else self._pass.rows

    # ---- one forward ----------------------------------------------------------------------------
    def check_batch(self, batch_size: int, rows: torch.Tensor | None = None) -> None:
        expected = self.batch_size if rows is None else int(rows.shape[0])
        if batch_size != expected:
            what = (
                f"holds a batch of {self.batch_size} rows" if rows is None else f"was given {expected} rows"
            )
            raise ValueError(
                f"the cache {what} but the input has {batch_size}; "
                "continue a cache with the same batch (or select its rows with select_rows)"
            )

    def begin(
        self,
        depth: int,
        columns: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        rows: torch.Tensor | None = None,
        attend: Sequence[int] | None = None,
    ) -> None:
        """Register the forward's tokens (b, T) as new entries of ``depth`` (before the layers run).

        ``rows``: the batch rows the forward runs over (deeper depths only; None = all).
        ``attend``: the depths its queries see (default 0..depth; each must be <= depth).
        """
        if depth == 0 and rows is not None:
            raise ValueError("a depth-0 pass extends every row of the batch; rows= is for deeper passes")
        if rows is not None:
            rows = rows.to(device=self.device, dtype=torch.long)
            if (
                rows.dim() != 1
                or rows.numel() == 0
                or not bool(((rows >= 0) & (rows < self.batch_size)).all())
            ):
                raise ValueError(
                    f"rows must be distinct batch indices in [0, {self.batch_size}), got {rows.tolist()}"
                )
            if rows.unique().numel() != rows.numel():
                raise ValueError(f"rows must be distinct batch indices, got {rows.tolist()}")
        self.check_batch(columns.shape[0], rows)
        attended = tuple(range(depth + 1)) if attend is None else tuple(sorted({int(d) for d in attend}))
        if not attended or any(not 0 <= d <= depth for d in attended):
            raise ValueError(f"a depth-{depth} pass attends to depths in 0..{depth}, got {list(attended)}")
        if depth not in self._entries:
            if depth > 0 and depth - 1 not in self._entries:
                raise ValueError(
                    f"a depth-{depth} pass needs an earlier depth-{depth - 1} pass over the batch"
                )
            zeros = torch.zeros(self.batch_size, 0, dtype=torch.long, device=self.device)
            counts = torch.zeros(self.batch_size, dtype=torch.long, device=self.device) if depth else None
            self._entries[depth] = _Entries(zeros, zeros.clone(), zeros.bool(), row_counts=counts)
        self._pass = _Pass(depth, rows, attended, columns)
        entries = self._entries[depth]
        if depth == 0:
            entries.append(columns, positions, valid)
        else:
            all_rows = torch.arange(self.batch_size, device=self.device) if rows is None else rows
            batch_index, slot_index = entries.append_ragged(all_rows, columns, positions, valid)
            self._pass.ragged_index = (batch_index, slot_index, valid)

    def visible(self, depth: int, query_columns: torch.Tensor) -> torch.Tensor:
        """(b, T, keys) bool: which entries of the attended depths (in :meth:`update_kv`'s order) the
        queries at ``query_columns`` (b, T) see: valid entries whose column is <= the query's."""
        parts = []
        for d in self.attending(depth):
            cols, _, valid = self._rows_of(self.entries(d))
            parts.append(valid[:, None, :] & (cols[:, None, :] <= query_columns[:, :, None]))
        return torch.cat(parts, dim=-1)

    def _rows_of(self, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        rows = self.rows
        return tensors if rows is None else tuple(t.index_select(0, rows) for t in tensors)

    def finish(self, depth: int, new_columns: int, real_tokens: torch.Tensor) -> None:
        """Close a forward: a depth-0 one advances the sequence by ``new_columns`` (real per row)."""
        if depth == 0:
            self.columns += new_columns
            self.next_positions = self.next_positions + real_tokens
        self._pass = None

    # ---- slots ----------------------------------------------------------------------------------
    def update_kv(
        self, occurrence: int, depth: int, keys: torch.Tensor, values: torch.Tensor, time_dim: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this forward's keys/values in slot (occurrence, depth); return the keys/values of the
        attended depths of that occurrence for the forward's rows, concatenated along ``time_dim`` in
        depth order (the order :meth:`visible` describes)."""
        slot = self._kv.get((occurrence, depth))
        if slot is None:
            shape = [self.batch_size, *keys.shape[1:]]
            shape[time_dim] = 0
            vshape = [self.batch_size, *values.shape[1:]]
            vshape[time_dim] = 0
            slot = _KV(keys.new_zeros(shape), values.new_zeros(vshape))
            self._kv[(occurrence, depth)] = slot
        expected = self._entries[depth].count
        if depth == 0:
            n, T = slot.count, keys.shape[time_dim]
            if n + T != expected:
                raise RuntimeError(
                    f"slot (occurrence {occurrence}, depth 0) would hold {n + T} entries but its depth has "
                    f"{expected}: every forward must run each occurrence exactly once"
                )
            slot.keys = _grow(slot.keys, time_dim, n, n + T)
            slot.values = _grow(slot.values, time_dim, n, n + T)
            slot.keys.narrow(time_dim, n, T).copy_(keys)
            slot.values.narrow(time_dim, n, T).copy_(values)
        else:
            assert self._pass is not None and self._pass.ragged_index is not None
            batch_index, slot_index, valid = self._pass.ragged_index
            slot.keys = _grow(slot.keys, time_dim, slot.count, expected)
            slot.values = _grow(slot.values, time_dim, slot.count, expected)
            # time next to batch: (B, time, ...) views of the buffers and (b, T, ...) of the new tokens
            slot.keys.movedim(time_dim, 1)[batch_index, slot_index] = keys.movedim(time_dim, 1)[valid]
            slot.values.movedim(time_dim, 1)[batch_index, slot_index] = values.movedim(time_dim, 1)[valid]
        slot.count = expected
        keys_out, values_out = [], []
        for d in self.attending(depth):
            s = self._kv.get((occurrence, d))
            if s is not None:
                k, v = self._rows_of(
                    (s.keys.narrow(time_dim, 0, s.count), s.values.narrow(time_dim, 0, s.count))
                )
                keys_out.append(k)
                values_out.append(v)
        if len(keys_out) == 1:
            return keys_out[0], values_out[0]
        return torch.cat(keys_out, dim=time_dim), torch.cat(values_out, dim=time_dim)

    def get_state(self, occurrence: int, depth: int) -> RecurrentState | None:
        """Slot (occurrence, depth)'s recurrent state for the forward's rows (None: never written)."""
        state = self._states.get((occurrence, depth))
        return None if state is None else self._rows_of(state)

    def set_state(self, occurrence: int, depth: int, state: RecurrentState) -> None:
        """Write the forward's rows' recurrent state of slot (occurrence, depth)."""
        rows = self.rows
        if rows is None:
            self._states[(occurrence, depth)] = state
            return
        full = self._states.get((occurrence, depth))
        if full is None:
            full = tuple(x.new_zeros((self.batch_size, *x.shape[1:])) for x in state)
        self._states[(occurrence, depth)] = tuple(f.index_copy(0, rows, s) for f, s in zip(full, state))

    def at_depth(self, depth: int) -> DepthView:
        """The view a GatedLM mixer uses: slot index = occurrence, at ``depth``."""
        return DepthView(self, depth)

    def nbytes(self) -> int:
        """Bytes held: keys/values (allocated capacity), recurrent states, entries and auxiliary state."""
        tensors: list[torch.Tensor] = [self.next_positions]
        for kv in self._kv.values():
            tensors += [kv.keys, kv.values]
        for state in self._states.values():
            tensors += list(state)
        for e in self._entries.values():
            tensors += [e.columns, e.positions, e.valid] + (
                [e.row_counts] if e.row_counts is not None else []
            )
        for value in self.aux.values():
            tensors += value.tensors()
        return sum(t.numel() * t.element_size() for t in tensors)

    # ---- batch surgery --------------------------------------------------------------------------
    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep only batch rows ``rows`` (B',) (e.g. drop finished sequences), in that order."""
        rows = rows.to(self.device)
        for e in self._entries.values():
            e.select_rows(rows)
        for kv in self._kv.values():
            kv.keys, kv.values = kv.keys.index_select(0, rows), kv.values.index_select(0, rows)
        self._states = {k: tuple(x.index_select(0, rows) for x in s) for k, s in self._states.items()}
        for value in self.aux.values():
            value.select_rows(rows)
        self.next_positions = self.next_positions.index_select(0, rows)
        self.batch_size = int(rows.shape[0])


class DepthView:
    """A :class:`SlotCache` seen by GatedLM's mixers at one depth (their ``MixerCache`` protocol):
    ``slot`` is the occurrence index, keys/values are batch-first (B, T, Hkv, D)."""

    def __init__(self, cache: SlotCache, depth: int) -> None:
        self.cache, self.depth = cache, depth

    def update_kv(
        self, slot: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cache.update_kv(slot, self.depth, keys, values, time_dim=1)

    def get_state(self, slot: int) -> RecurrentState | None:
        return self.cache.get_state(slot, self.depth)

    def set_state(self, slot: int, state: RecurrentState) -> None:
        self.cache.set_state(slot, self.depth, state)


def check_path(path: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """A layer path as a tuple of layer indices (None: every layer once, in order)."""
    if path is None:
        return tuple(range(num_layers))
    if isinstance(path, torch.Tensor):
        path = path.tolist()
    order = tuple(path)
    bad = [i for i in order if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers]
    if bad:
        raise ValueError(
            f"a layer path holds layer indices in [0, {num_layers}), got {bad} in {list(order)}; skip a "
            "layer by leaving it out and repeat one by listing it again"
        )
    return order
