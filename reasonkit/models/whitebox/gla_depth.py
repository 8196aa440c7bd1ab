"""Latent depths through a GLA layer: one state per (layer, depth), sharing the first pass's decay.

A softmax-attention layer lets a token at (column i, depth d) attend to every key (j, d') with
j <= i and d' <= d (Think-at-Hard's duo-causal rule). GLA has a state instead of keys; the analogue
under its decay kernel (../shared/research/whitebox-methods-deep.md §1.12) keeps one state per depth,
every one decayed by the *depth-0* gates of each time step,

    S⁽ᵈ⁾ᵢ = exp(g⁽⁰⁾ᵢ) ⊙ S⁽ᵈ⁾ᵢ₋₁ + mᵢ⁽ᵈ⁾ k⁽ᵈ⁾ᵢ v⁽ᵈ⁾ᵢᵀ      (m⁽ᵈ⁾: tokens re-run at depth d; m⁽⁰⁾ ≡ 1)

and a depth-d query reads the sum of the states it attends to, o⁽ᵈ⁾ᵢ = scale · q⁽ᵈ⁾ᵢ Σ_{d'≤d} S⁽ᵈ'⁾ᵢ, so
every depth shares one decay kernel Γ(j→i) = Π exp(g⁽⁰⁾ₜ) and depth 0 reads only S⁽⁰⁾.

Over a whole chunk of columns that is one GLA scan per attended depth, all sharing q⁽ᵈ⁾ (scattered to
the chunk, zero elsewhere) and g⁽⁰⁾, stacked on the batch axis into one kernel call:
o⁽¹⁾ = GLA(q⁽¹⁾, k⁽⁰⁾, v⁽⁰⁾, g⁽⁰⁾; S⁽⁰⁾ at the chunk start) + GLA(q⁽¹⁾, m⊙k⁽¹⁾, v⁽¹⁾, g⁽⁰⁾; S⁽¹⁾ at the start).
``scale`` is passed explicitly as K^-1/2 of one head: a layout that concatenated the depths along the
key axis instead would get the default scale of 2K wrong — errors of order 1 (§1.12's trap).

So a deeper pass re-runs tokens of the *latest* depth-0 forward (its "chunk": a prompt, a training
batch or one decode step), whose depth-0 keys, values and decay this module keeps in the cache
(:class:`GLADepths`, in ``SlotCache.aux``). A deeper state that misses a chunk (no row re-ran a
token) owes that chunk's decay; it is kept as a pending log decay and applied at its next use, so a
decode step where nothing iterates costs one sum per layer. Only the rows a deeper pass runs over are
read or written. ``tests/models/test_gla_depth.py`` checks an explicit per-token duo-causal loop ==
this chunked form == incremental decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from reasonkit.models.gated_lm.gla import GLAMixer, pick_kernel
from reasonkit.models.whitebox.cache import SlotCache


@dataclass
class _DepthChunk:
    """What depth d contributed to the latest chunk: its state at the chunk's start (B, H, K, V), its
    keys (B, Tc, H, K) zero where nothing entered, its values (B, Tc, H, V), and the rows that ran."""

    start: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    rows: torch.Tensor  # (B,) bool


@dataclass
class GLADepths:
    """Per GLA occurrence: the latest depth-0 chunk and the deeper states' pending decay."""

    first_column: int
    length: int
    decay: torch.Tensor  # (B, Tc, H, K) depth-0 log decay of the chunk (zero at padding)
    decay_sum: torch.Tensor  # (B, H, K)
    chunks: dict[int, _DepthChunk] = field(default_factory=dict)
    pending: dict[int, torch.Tensor] = field(default_factory=dict)  # depth -> (B, H, K) owed log decay

    def tensors(self) -> list[torch.Tensor]:
        held = [self.decay, self.decay_sum, *self.pending.values()]
        for c in self.chunks.values():
            held += [c.start, c.keys, c.values, c.rows]
        return held

    def select_rows(self, rows: torch.Tensor) -> None:
        self.decay, self.decay_sum = self.decay.index_select(0, rows), self.decay_sum.index_select(0, rows)
        self.pending = {d: p.index_select(0, rows) for d, p in self.pending.items()}
        self.chunks = {
            d: _DepthChunk(*(x.index_select(0, rows) for x in (c.start, c.keys, c.values, c.rows)))
            for d, c in self.chunks.items()
        }


def _key(occurrence: int) -> tuple[str, int]:
    return ("gla_depths", occurrence)


def gla_layer(
    layer: Any,
    hidden: torch.Tensor,
    cache: SlotCache,
    occurrence: int,
    depth: int,
    columns: torch.Tensor,
    valid: torch.Tensor,
    attend: tuple[int, ...],
) -> torch.Tensor:
    """One GatedLM decoder layer whose mixer is GLA, at any depth: (b, T, hidden) -> same.

    ``columns`` (b, T) are the tokens' columns, ``valid`` (b, T) which are real; depth 0 must be the
    cache's next columns (a normal forward), a deeper pass re-runs columns of the latest depth-0 one.
    """
    x = layer.input_norm(hidden)
    mixer: GLAMixer = layer.mixer
    token_mask = None if bool(valid.all()) else valid
    if depth == 0:
        o = _depth0(mixer, x, token_mask, cache, occurrence, int(columns[0, 0]) if columns.numel() else 0)
    else:
        o = _deeper(mixer, x, valid, cache, occurrence, depth, columns, attend)
    hidden = hidden + mixer.readout(x, o)
    return hidden + layer.mlp(layer.post_mixer_norm(hidden))  # type: ignore[no-any-return]


def _depth0(
    mixer: GLAMixer,
    x: torch.Tensor,
    token_mask: torch.Tensor | None,
    cache: SlotCache,
    occurrence: int,
    first: int,
) -> torch.Tensor:
    q, k, v, g = mixer.project(x, token_mask)
    assert g is not None
    previous = cache.get_state(occurrence, 0)
    state = None if previous is None else previous[0]
    o, new_state = mixer.mix(q, k, v, g, state, keep_state=True)
    assert new_state is not None
    cache.set_state(occurrence, 0, (new_state,))
    B, T, H, K = k.shape
    start = state if state is not None else new_state.new_zeros(B, H, K, v.shape[-1])
    memo = cache.aux.get(_key(occurrence))
    decay_sum = g.sum(1)  # (B, H, K)
    pending = {} if memo is None else memo.pending  # type: ignore[attr-defined]
    pending = {d: p + decay_sum for d, p in pending.items()}
    everyone = torch.ones(B, dtype=torch.bool, device=x.device)
    cache.aux[_key(occurrence)] = GLADepths(
        first, T, g, decay_sum, {0: _DepthChunk(start, k, v, everyone)}, pending
    )
    return o


def _deeper(
    mixer: GLAMixer,
    x: torch.Tensor,
    valid: torch.Tensor,
    cache: SlotCache,
    occurrence: int,
    depth: int,
    columns: torch.Tensor,
    attend: tuple[int, ...],
) -> torch.Tensor:
    memo = cache.aux.get(_key(occurrence))
    if not isinstance(memo, GLADepths):
        raise ValueError(f"a depth-{depth} pass through a GLA layer needs a depth-0 pass before it")
    b, T = valid.shape
    rows = cache.rows if cache.rows is not None else torch.arange(b, device=x.device)
    offsets = columns.to(x.device) - memo.first_column  # (b, T) index in the chunk
    inside = (offsets >= 0) & (offsets < memo.length)
    if not bool(inside[valid].all()):
        raise ValueError(
            f"a depth-{depth} pass through GLA layers re-runs tokens of the latest depth-0 forward only "
            f"(columns {memo.first_column}..{memo.first_column + memo.length - 1}); run it right after that "
            "forward, before the sequence moves on"
        )
    done = memo.chunks.get(depth)
    if done is not None and bool(done.rows.index_select(0, rows).any()):
        raise ValueError(
            f"these rows already ran a depth-{depth} pass over the latest depth-0 forward; pass every "
            "re-run token of a depth in one forward"
        )
    q, k, v, _ = mixer.project(x, valid, decay=False)  # k is zero at packing pads: they never enter
    H, K, V = q.shape[2], q.shape[3], v.shape[3]
    Tc = memo.length
    where = offsets.clamp(0, Tc - 1)  # (b, T); pads scatter zeros, so their place does not matter

    def scatter(packed: torch.Tensor) -> torch.Tensor:  # (b, T, H, ·) -> (b, Tc, H, ·)
        keep = valid[:, :, None, None].to(packed.dtype)
        index = where[:, :, None, None].expand_as(packed)
        return packed.new_zeros(b, Tc, *packed.shape[2:]).scatter_add(1, index, packed * keep)

    q_chunk, k_chunk, v_chunk = scatter(q), scatter(k), scatter(v)
    decay = memo.decay.index_select(0, rows)
    previous = cache.get_state(occurrence, depth)
    if previous is None:
        own_start = q.new_zeros(b, H, K, V, dtype=memo.chunks[0].start.dtype)
    else:
        owed = memo.pending[depth].index_select(0, rows) - memo.decay_sum.index_select(0, rows)
        own_start = owed.exp()[..., None] * previous[0]  # the state at the chunk's start
    scans: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (start, keys, values) per depth
    for d in sorted({*attend, depth}):
        if d == depth:
            scans.append((own_start, k_chunk, v_chunk))
            continue
        chunk = memo.chunks.get(d)
        if chunk is None or not bool(chunk.rows.index_select(0, rows).all()):
            raise ValueError(
                f"a depth-{depth} pass reads depth {d} of the latest chunk, which these rows did not run"
            )
        scans.append(tuple(t.index_select(0, rows) for t in (chunk.start, chunk.keys, chunk.values)))  # type: ignore[arg-type]
    n = len(scans)
    kernel = pick_kernel(mixer.kernel_mode, q_chunk, Tc)
    o_all, finals = kernel(
        q_chunk.repeat(n, 1, 1, 1),
        torch.cat([s[1] for s in scans]).to(q.dtype),
        torch.cat([s[2] for s in scans]).to(q.dtype),
        decay.repeat(n, 1, 1, 1),
        scale=K**-0.5,  # one head's K: the scans are stacked on the batch axis, never along K
        initial_state=torch.cat([s[0] for s in scans]),
        output_final_state=True,
    )
    order = sorted({*attend, depth})
    parts = o_all.view(n, b, Tc, H, V)
    o_chunk = sum(parts[i] for i, d in enumerate(order) if d in attend)
    assert finals is not None and isinstance(o_chunk, torch.Tensor)
    own = order.index(depth)
    cache.set_state(occurrence, depth, (finals.view(n, b, H, K, V)[own],))
    B = memo.decay.shape[0]
    pending = memo.pending.get(depth, memo.decay_sum.new_zeros(memo.decay_sum.shape))
    memo.pending[depth] = pending.index_copy(0, rows, pending.new_zeros(b, H, K))
    memo.chunks[depth] = _merge(memo.chunks.get(depth), rows, B, own_start, k_chunk, v_chunk)
    return o_chunk.gather(1, where[:, :, None, None].expand(b, T, H, V))  # (b, T, H, V)


def _merge(
    previous: _DepthChunk | None,
    rows: torch.Tensor,
    batch: int,
    start: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
) -> _DepthChunk:
    """Depth d's contribution to the chunk, for every batch row (rows that did not run hold zeros)."""
    if previous is None:
        previous = _DepthChunk(
            start.new_zeros(batch, *start.shape[1:]),
            keys.new_zeros(batch, *keys.shape[1:]),
            values.new_zeros(batch, *values.shape[1:]),
            torch.zeros(batch, dtype=torch.bool, device=rows.device),
        )
    ran = previous.rows.index_fill(0, rows, True)
    return _DepthChunk(
        previous.start.index_copy(0, rows, start),
        previous.keys.index_copy(0, rows, keys),
        previous.values.index_copy(0, rows, values),
        ran,
    )
