"""Packed variable-length batches <-> padded batches, for GLA paths that run equal-length sequences.

fla packs N sequences of different lengths into one row (batch size 1) described by
``cu_seqlens`` (N + 1 offsets). A GLA state never crosses a sequence boundary, and zero padding at a
sequence's end changes nothing (k = v = 0 adds nothing to the state, g = 0 does not decay it), so
running the padded (N, T_max) batch and dropping the padding is exact. Autograd flows through both
directions (they are a scatter and a gather).
"""

from __future__ import annotations

import torch


def padded_positions(cu_seqlens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Flat indices into an (N * T_max) grid of every packed token, in packed order; and T_max."""
    bounds = cu_seqlens.to(torch.long)
    lengths = bounds[1:] - bounds[:-1]  # (N,)
    N = lengths.numel()
    t_max = int(lengths.max()) if N else 0
    seq_of_token = torch.repeat_interleave(torch.arange(N, device=bounds.device), lengths)  # (T,)
    pos_in_seq = torch.arange(int(bounds[-1]), device=bounds.device) - bounds[:-1][seq_of_token]  # (T,)
    return seq_of_token * t_max + pos_in_seq, t_max


def unpack(x: torch.Tensor, index: torch.Tensor, n_seqs: int, t_max: int) -> torch.Tensor:
    """(1, T, H, D) packed -> (N, T_max, H, D) zero-padded."""
    padded = x.new_zeros(n_seqs * t_max, *x.shape[2:])
    padded = padded.index_copy(0, index, x[0])  # (N * T_max, H, D)
    return padded.view(n_seqs, t_max, *x.shape[2:])


def pack(y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(N, T_max, H, D) padded -> (1, T, H, D) packed."""
    return y.reshape(-1, *y.shape[2:]).index_select(0, index)[None]
