"""Tiny random GatedLMs for the model tests (built in the test, never downloaded).

A plain module with a unique name, not conftest.py: several test folders import helpers from their
conftest, and ``from conftest import ...`` resolves to whichever was imported first in a full run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reasonkit.models import GatedLMConfig, GatedLMForCausalLM

VOCAB = 97


def tiny_config(layer_types: list[str], **overrides: object) -> GatedLMConfig:
    fields: dict[str, object] = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=len(layer_types),
        mixer_types=layer_types,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    fields.update(overrides)
    return GatedLMConfig(**fields)  # type: ignore[arg-type]


@torch.no_grad()
def spread_weights(model: nn.Module, seed: int = 0) -> None:
    """Re-draw every weight at O(1) scale: the 0.02 init makes outputs nearly input-independent,
    which would let a broken mask or cache pass a comparison."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("recurrent_weight"):
            fresh = torch.randn(p.shape, generator=gen) * 0.3
        elif name.endswith("recurrent_bias"):
            fresh = p.detach().cpu() + torch.randn(p.shape, generator=gen) * 0.5
        elif p.dim() == 2:
            fresh = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1] if "embed" not in name else 1)
        elif name.endswith(".bias"):
            fresh = torch.randn(p.shape, generator=gen) * 0.5
        else:  # norm weights
            fresh = 0.5 + torch.rand(p.shape, generator=gen)
        p.copy_(fresh.to(p.dtype))


def make_model(
    layer_types: list[str], dtype: torch.dtype = torch.float64, seed: int = 0, **overrides: object
) -> GatedLMForCausalLM:
    torch.manual_seed(seed)
    model = GatedLMForCausalLM(tiny_config(layer_types, **overrides))
    spread_weights(model, seed)
    return model.to(dtype).eval()


def left_pad(rows: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows into (ids, attention_mask), as a tokenizer with padding_side='left' does."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    return ids, mask
