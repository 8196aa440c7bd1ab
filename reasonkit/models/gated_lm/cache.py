"""Decoding state of a GatedLM: a recurrent state per GLA / sLSTM slot, keys and values per attention slot.

A *slot* is one occurrence of a layer in the forward's ``layer_order`` (default ``range(L)``), so a
layer that a chain-of-layers path repeats (CoLa, arXiv 2507.07996) gets one slot per visit and its
states never collide. A cache is bound to the layer order of the forward that created it; reusing it
with another order is an error.

Besides the per-slot states the cache keeps, for the whole batch:
- ``key_mask`` (B, seen_tokens) bool: which cached positions are real tokens (False at left pads),
  so later calls only need the mask of their new tokens;
- ``positions`` (B,) long: real tokens seen per row, the rotary position of each row's next token.

Keys and values live in buffers whose capacity doubles when full, so a decode step writes in place
instead of concatenating the whole past (amortised O(1) per token).

Mixers reach their slot through :class:`MixerCache` (``update_kv``, ``get_state``, ``set_state``), the
protocol the white-box layer's per-depth cache views implement too (:mod:`reasonkit.models.whitebox`).

It follows the parts of transformers' ``Cache`` interface that ``generate()`` uses
(``get_seq_length``, ``is_linear``, ``reorder_cache`` for beam search, ``batch_repeat_interleave``,
``batch_select_indices``) without subclassing it: transformers' ``DynamicCache`` builds layers from
``config.layer_types`` names it knows, and ours are "gla" / "attn" / "slstm" (the approach of
transformers' own xLSTM and Mamba caches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

RecurrentState = tuple[torch.Tensor, ...]


class MixerCache(Protocol):
    """What a mixer needs from a cache: its slot's keys/values or recurrent state."""

    def update_kv(
        self, slot: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def get_state(self, slot: int) -> RecurrentState | None: ...

    def set_state(self, slot: int, state: RecurrentState) -> None: ...


def _grow(buffer: torch.Tensor, used: int, needed: int) -> torch.Tensor:
    """Return ``buffer`` (B, capacity, ...) or a copy with at least ``needed`` positions (capacity doubles)."""
    if needed <= buffer.shape[1]:
        return buffer
    capacity = max(needed, 2 * buffer.shape[1], 16)
    grown = buffer.new_zeros((buffer.shape[0], capacity, *buffer.shape[2:]))
    grown[:, :used] = buffer[:, :used]
    return grown


class GatedLMCache:
    """Per-slot decoding state; created by the model's forward when ``use_cache=True``.

    Args:
        layer_types: the config's per-layer types.
        layer_order: the layers the forward runs, in order (repeats allowed).
    """

    is_compileable = False

    def __init__(self, layer_types: Sequence[str], layer_order: Sequence[int]) -> None:
        self.layer_order: tuple[int, ...] = tuple(int(i) for i in layer_order)
        self.slot_types: tuple[str, ...] = tuple(layer_types[i] for i in self.layer_order)
        self.recurrent: list[RecurrentState | None] = [None] * len(self.slot_types)
        self._keys: list[torch.Tensor | None] = [None] * len(self.slot_types)  # (B, capacity, Hkv, D)
        self._values: list[torch.Tensor | None] = [None] * len(self.slot_types)
        self._mask: torch.Tensor | None = None  # (B, capacity) bool
        self.positions: torch.Tensor | None = None  # (B,) long
        self.seen_tokens = 0

    def __repr__(self) -> str:
        return f"GatedLMCache(slots={list(self.slot_types)}, layer_order={list(self.layer_order)}, seen_tokens={self.seen_tokens})"

    def __len__(self) -> int:
        return len(self.slot_types)

    # ---- what generate() reads ----
    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens seen so far (pads included), the same for every slot."""
        return self.seen_tokens

    @property
    def is_linear(self) -> list[bool]:
        """All False: generate() slices a continued prompt by ``get_seq_length()`` only when some
        layer is not "linear", and this cache counts tokens for every slot, so a continuation always
        passes the full sequence, whatever the mix of layer types (recurrent slots still hold no
        sequence dimension)."""
        return [False] * len(self.slot_types)

    @property
    def batch_size(self) -> int:
        return -1 if self.positions is None else int(self.positions.shape[0])

    def check_continuation(self, layer_order: Sequence[int], batch_size: int) -> None:
        """Raise ValueError unless a forward with this layer order and batch can continue the cache."""
        if self.batch_size not in (-1, batch_size):
            raise ValueError(
                f"the cache holds a batch of {self.batch_size} rows but the input has {batch_size}; "
                "continue a cache with the same batch (or reorder it with batch_select_indices)"
            )
        if tuple(layer_order) != self.layer_order:
            raise ValueError(
                f"this cache was built for layer_order={list(self.layer_order)} but the forward runs "
                f"{list(layer_order)}; a cache holds one state per visited layer, so pass the same "
                "layer_order on every call that shares it (or start a new cache)"
            )

    # ---- per-forward bookkeeping (called by GatedLMModel) ----
    def append_mask(self, token_mask: torch.Tensor) -> torch.Tensor:
        """Record the new tokens' mask (B, T) bool; return the mask over all keys (B, seen_tokens + T)."""
        B, T = token_mask.shape
        if self._mask is None:
            self._mask = token_mask.new_zeros((B, 0))
            self.positions = torch.zeros(B, dtype=torch.long, device=token_mask.device)
        self._mask = _grow(self._mask, self.seen_tokens, self.seen_tokens + T)
        self._mask[:, self.seen_tokens : self.seen_tokens + T] = token_mask
        return self._mask[:, : self.seen_tokens + T]

    def advance(self, new_tokens: int, real_tokens: torch.Tensor) -> None:
        """Close a forward over ``new_tokens`` positions, ``real_tokens`` (B,) of them real per row."""
        assert self.positions is not None
        self.seen_tokens += new_tokens
        self.positions = self.positions + real_tokens

    def update_kv(
        self, slot: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append keys/values (B, T, Hkv, D) to an attention slot; return all of them (B, seen + T, Hkv, D)."""
        past = self.seen_tokens
        buf_k, buf_v = self._keys[slot], self._values[slot]
        if buf_k is None or buf_v is None:
            buf_k = keys.new_zeros((keys.shape[0], 0, *keys.shape[2:]))
            buf_v = values.new_zeros((values.shape[0], 0, *values.shape[2:]))
        T = keys.shape[1]
        buf_k, buf_v = _grow(buf_k, past, past + T), _grow(buf_v, past, past + T)
        buf_k[:, past : past + T] = keys
        buf_v[:, past : past + T] = values
        self._keys[slot], self._values[slot] = buf_k, buf_v
        return buf_k[:, : past + T], buf_v[:, : past + T]

    def get_state(self, slot: int) -> RecurrentState | None:
        """The recurrent state of a GLA / sLSTM slot (None before its first token)."""
        return self.recurrent[slot]

    def set_state(self, slot: int, state: RecurrentState) -> None:
        self.recurrent[slot] = state

    # ---- batch surgery (beam search, n > 1 sampling, dropping finished rows) ----
    def _map_rows(self, fn) -> None:  # type: ignore[no-untyped-def]
        # every tensor the cache holds is batch-first
        self.recurrent = [None if s is None else tuple(fn(x, 0) for x in s) for s in self.recurrent]
        self._keys = [None if x is None else fn(x, 0) for x in self._keys]
        self._values = [None if x is None else fn(x, 0) for x in self._values]
        if self._mask is not None and self.positions is not None:
            self._mask, self.positions = fn(self._mask, 0), fn(self.positions, 0)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep row ``beam_idx[i]`` as row i (beam search)."""
        self._map_rows(lambda x, d: x.index_select(d, beam_idx.to(x.device)))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.reorder_cache(indices)  # type: ignore[arg-type]

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times in place (as transformers' caches do for n > 1)."""
        self._map_rows(lambda x, d: x.repeat_interleave(repeats, dim=d))

    def crop(self, max_length: int) -> None:
        raise NotImplementedError(
            "GatedLMCache cannot be cropped: GLA and sLSTM states cannot forget tokens. Recompute the "
            "prefix instead (assisted / speculative decoding is not supported for this model)"
        )
