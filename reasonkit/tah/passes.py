"""The Think-at-Hard forward as a list of packed passes (training, prefill, decode and scoring share it).

Pass 1 is the plain model over every token. A router (the decider, oracle labels, or "always") picks
the tokens whose prediction goes on; only those are packed, left-aligned per row, into the next pass
— which runs over only the batch rows that have any — with

- input: softmax over the top-k of the token's *accumulated* logits, times those tokens' embedding
  rows, at the token's own column and rotary position (the soft version of the token about to be
  emitted; gradient flows through it into the earlier pass and the embedding matrix);
- attention: duo-causal through the white-box cache (a depth-d query sees depth <= d keys at columns
  <= its own; depth 0 never sees deeper keys), or the ablations' depth 0 only / own depth only;
- LoRA adapters on (the first pass runs the base weights);
- residual logits: z_d = z_(d-1) + head(pass d).

Tokens are followed by their column, so nothing dense of size (B, T, V) is built beyond the first
pass's own logits; :func:`dense_logits` assembles one for tests and scoring.

    >>> passes = run_passes(runtime, embeds, attention_mask, eligible=eligible)   # doctest: +SKIP
    >>> passes[1].columns, passes[1].logits        # tokens that took a second pass, their logits
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from reasonkit.models.whitebox import SlotCache, WhiteBoxOutput
from reasonkit.tah.lora import adapters

if TYPE_CHECKING:
    from reasonkit.tah.model import TaHModel


@dataclass
class Pass:
    """One pass over packed tokens. ``depth`` is the white-box depth (0 = the first pass); ``rows``
    (b,) the batch rows it ran over; ``columns``, ``valid`` (b, n) its tokens and which are real;
    ``logits`` (b, n, V) their accumulated logits; ``source`` (b, n) each token's index in the
    previous pass's packing; ``continues`` (b, n) which went on (set when the next pass is routed);
    ``decider_logits`` (b, n) when the decider routed them."""

    depth: int
    rows: torch.Tensor
    columns: torch.Tensor
    valid: torch.Tensor
    logits: torch.Tensor
    hidden_states: dict[int, torch.Tensor]
    source: torch.Tensor | None = None
    continues: torch.Tensor | None = None
    decider_logits: torch.Tensor | None = None


def soft_embedding(logits: torch.Tensor, embedding: torch.Tensor, top_k: int) -> torch.Tensor:
    """Σ_{top-k} softmax(top-k logits) · E[token]: (..., V) logits, (V, H) embedding -> (..., H).

    With top_k = 1 this is the argmax token's embedding row; with top_k = V, softmax(z) @ E."""
    V, H = embedding.shape
    k = min(top_k, V)
    top = logits.topk(k, dim=-1)
    weights = torch.softmax(top.values.float(), dim=-1).to(embedding.dtype)  # (..., k)
    if k * H >= V:  # a sparse (..., V) weight row is smaller than k gathered embedding rows
        dense = weights.new_zeros(*weights.shape[:-1], V).scatter(-1, top.indices, weights)
        return dense @ embedding
    rows = torch.nn.functional.embedding(top.indices, embedding)  # (..., k, H)
    return (weights[..., None] * rows).sum(-2)


def first_pass(
    model: TaHModel,
    out: WhiteBoxOutput,
    columns: torch.Tensor,
    valid: torch.Tensor,
    logits: torch.Tensor | None = None,
) -> Pass:
    """The first pass from the white-box output it produced (all rows; ``columns``, ``valid`` (B, T));
    ``logits`` (B, T, V) when they were computed already."""
    B = out.hidden.shape[0]
    rows = torch.arange(B, device=out.hidden.device)
    if logits is None:
        logits = model.lm.logits(out.hidden)
    return Pass(0, rows, columns, valid, logits, dict(out.hidden_states))


Router = Callable[[Pass], torch.Tensor]


def run_deeper(
    model: TaHModel,
    first: Pass,
    cache: SlotCache,
    eligible: torch.Tensor,
    route: Router,
) -> list[Pass]:
    """Run passes 2..max_depth after ``first``: ``eligible`` (B, T_cols) says which (row, column) may
    go on at all (indexed by column minus ``first.columns[0, 0]``); ``route(pass)`` (b, n) bool which
    of a pass's tokens want to. Returns every pass, ``first`` included."""
    cfg = model.config
    passes = [first]
    offset = int(first.columns[0, 0]) if first.columns.numel() else 0
    for depth in range(1, cfg.max_depth):
        prev = passes[-1]
        allowed = eligible[prev.rows[:, None], prev.columns - offset] & prev.valid
        cont = route(prev) & allowed  # (b, n)
        prev.continues = cont
        keep = cont.any(1)
        if not bool(keep.any()):
            break
        counts = cont.sum(1)[keep]
        n = int(counts.max())
        kept = cont[keep]  # (b', n_prev)
        source = torch.sort((~kept).to(torch.int8), dim=1, stable=True).indices[:, :n]  # continuing first
        valid = kept.gather(1, source)
        columns = prev.columns[keep].gather(1, source)
        z_prev = prev.logits[keep].gather(1, source[..., None].expand(-1, -1, prev.logits.shape[-1]))
        rows = prev.rows[keep]
        inputs = soft_embedding(z_prev, model.lm.embedding_matrix, cfg.top_k)
        wanted = model.decider_layers if depth < cfg.max_depth - 1 and cfg.route == "decider" else ()
        with adapters(model.lora_layers, on=cfg.lora):
            out = model.lm.forward(
                inputs,
                attention_mask=valid.long(),
                cache=cache,
                depth=depth,
                columns=columns,
                rows=None if rows.numel() == cache.batch_size else rows,
                attend=cfg.attended(depth),
                hidden_states=wanted,
            )
        logits = model.lm.logits(out.hidden)
        if cfg.residual:
            logits = logits + z_prev
        passes.append(Pass(depth, rows, columns, valid, logits, dict(out.hidden_states), source))
    return passes


def token_depths(passes: list[Pass], batch: int, width: int, offset: int = 0) -> torch.Tensor:
    """(B, width) long: how many passes each (row, column - offset) got (0 where it was never run)."""
    depths = torch.zeros(batch, width, dtype=torch.long, device=passes[0].logits.device)
    for p in passes:
        r = p.rows[:, None].expand_as(p.columns)[p.valid]
        depths[r, p.columns[p.valid] - offset] = p.depth + 1
    return depths


def dense_logits(passes: list[Pass], batch: int, width: int, offset: int = 0) -> torch.Tensor:
    """(B, width, V): each token's logits from the deepest pass it reached."""
    first = passes[0]
    out = first.logits.new_zeros(batch, width, first.logits.shape[-1])
    for p in passes:
        r = p.rows[:, None].expand_as(p.columns)[p.valid]
        out[r, p.columns[p.valid] - offset] = p.logits[p.valid]
    return out
