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
  - ``valid``: False for left padding and for the packing pads of a sparse deeper pass.
A query at (column c, depth d) sees every valid entry of depth d' <= d whose column is <= c
(depth causality: a depth-0 query never sees a deeper key). Slots of attention layers hold the
entries' keys and values; slots of recurrent layers (GLA, sLSTM) hold a state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
    """Columns, rotary positions and validity (B, capacity) of the tokens a depth has seen."""

    columns: torch.Tensor
    positions: torch.Tensor
    valid: torch.Tensor
    count: int = 0

    def append(self, columns: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> None:
        n = self.count + columns.shape[1]
        self.columns = _grow(self.columns, 1, self.count, n)
        self.positions = _grow(self.positions, 1, self.count, n)
        self.valid = _grow(self.valid, 1, self.count, n)
        self.columns[:, self.count : n] = columns
        self.positions[:, self.count : n] = positions
        self.valid[:, self.count : n] = valid
        self.count = n

    def select_rows(self, rows: torch.Tensor) -> None:
        self.columns, self.positions, self.valid = (
            x.index_select(0, rows) for x in (self.columns, self.positions, self.valid)
        )


@dataclass
class _KV:
    keys: torch.Tensor
    values: torch.Tensor
    count: int = 0


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
    _entries: dict[int, _Entries] = field(default_factory=dict, init=False, repr=False)
    _kv: dict[tuple[int, int], _KV] = field(default_factory=dict, init=False, repr=False)
    _states: dict[tuple[int, int], RecurrentState] = field(default_factory=dict, init=False, repr=False)

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

    # ---- one forward ----------------------------------------------------------------------------
    def check_batch(self, batch_size: int) -> None:
        if batch_size != self.batch_size:
            raise ValueError(
                f"the cache holds a batch of {self.batch_size} rows but the input has {batch_size}; "
                "continue a cache with the same batch (or select its rows with select_rows)"
            )

    def begin(self, depth: int, columns: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> None:
        """Register the forward's tokens (B, T) as new entries of ``depth`` (before the layers run)."""
        self.check_batch(columns.shape[0])
        if depth not in self._entries:
            if depth > 0 and depth - 1 not in self._entries:
                raise ValueError(
                    f"a depth-{depth} pass needs an earlier depth-{depth - 1} pass over the batch"
                )
            zeros = torch.zeros(self.batch_size, 0, dtype=torch.long, device=self.device)
            self._entries[depth] = _Entries(zeros, zeros.clone(), zeros.bool())
        self._entries[depth].append(columns, positions, valid)

    def visible(self, depth: int, query_columns: torch.Tensor) -> torch.Tensor:
        """(B, T, keys) bool: which entries of depths 0..``depth`` (in :meth:`update_kv`'s order) the
        queries at ``query_columns`` (B, T) see: valid entries whose column is <= the query's."""
        parts = []
        for d in range(depth + 1):
            cols, _, valid = self.entries(d)
            parts.append(valid[:, None, :] & (cols[:, None, :] <= query_columns[:, :, None]))
        return torch.cat(parts, dim=-1)

    def finish(self, depth: int, new_columns: int, real_tokens: torch.Tensor) -> None:
        """Close a forward: a depth-0 one advances the sequence by ``new_columns`` (real per row)."""
        if depth == 0:
            self.columns += new_columns
            self.next_positions = self.next_positions + real_tokens

    # ---- slots ----------------------------------------------------------------------------------
    def update_kv(
        self, occurrence: int, depth: int, keys: torch.Tensor, values: torch.Tensor, time_dim: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this forward's keys/values to slot (occurrence, depth); return the keys/values of
        depths 0..``depth`` of that occurrence, concatenated along ``time_dim`` in depth order (the
        order :meth:`visible` describes)."""
        slot = self._kv.get((occurrence, depth))
        if slot is None:
            shape = list(keys.shape)
            shape[time_dim] = 0
            slot = _KV(
                keys.new_zeros(shape),
                values.new_zeros((*values.shape[:time_dim], 0, *values.shape[time_dim + 1 :])),
            )
            self._kv[(occurrence, depth)] = slot
        n, T = slot.count, keys.shape[time_dim]
        slot.keys = _grow(slot.keys, time_dim, n, n + T)
        slot.values = _grow(slot.values, time_dim, n, n + T)
        slot.keys.narrow(time_dim, n, T).copy_(keys)
        slot.values.narrow(time_dim, n, T).copy_(values)
        slot.count = n + T
        expected = self._entries[depth].count
        if slot.count != expected:
            raise RuntimeError(
                f"slot (occurrence {occurrence}, depth {depth}) holds {slot.count} entries but its depth "
                f"has {expected}: every forward must run each occurrence exactly once"
            )
        keys_out, values_out = [], []
        for d in range(depth + 1):
            s = self._kv.get((occurrence, d))
            if s is not None:
                keys_out.append(s.keys.narrow(time_dim, 0, s.count))
                values_out.append(s.values.narrow(time_dim, 0, s.count))
        if len(keys_out) == 1:
            return keys_out[0], values_out[0]
        return torch.cat(keys_out, dim=time_dim), torch.cat(values_out, dim=time_dim)

    def get_state(self, occurrence: int, depth: int) -> RecurrentState | None:
        return self._states.get((occurrence, depth))

    def set_state(self, occurrence: int, depth: int, state: RecurrentState) -> None:
        self._states[(occurrence, depth)] = state

    def at_depth(self, depth: int) -> DepthView:
        """The view a GatedLM mixer uses: slot index = occurrence, at ``depth``."""
        return DepthView(self, depth)

    # ---- batch surgery --------------------------------------------------------------------------
    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep only batch rows ``rows`` (B',) (e.g. drop finished sequences), in that order."""
        rows = rows.to(self.device)
        for e in self._entries.values():
            e.select_rows(rows)
        for kv in self._kv.values():
            kv.keys, kv.values = kv.keys.index_select(0, rows), kv.values.index_select(0, rows)
        self._states = {k: tuple(x.index_select(0, rows) for x in s) for k, s in self._states.items()}
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
