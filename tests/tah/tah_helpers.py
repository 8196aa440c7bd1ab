"""Tiny Think-at-Hard models for the tests: random Llama / Qwen2 / GatedLM with live adapters.

LoRA's B matrices start at zero (adapters that change nothing would let a gating bug pass), so
:func:`tah_model` re-draws every adapter weight at O(1) scale; the decider is random too.
"""

from __future__ import annotations

import torch
from models.gated_lm_helpers import make_model
from tiny_models import build_model, build_tokenizer

from reasonkit.models.whitebox import open_whitebox
from reasonkit.tah.config import DeciderSpec, TaHConfig
from reasonkit.tah.model import TaHModel

FAMILIES = ["llama", "qwen2", "gated"]
_TOKENIZER = None


def tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = build_tokenizer()
    return _TOKENIZER


def whitebox(family: str, layers: tuple[str, ...] = ("gla", "attn", "gla"), dtype=torch.float64):
    if family == "gated":
        return open_whitebox(make_model(list(layers), dtype=dtype, seed=3))
    return open_whitebox(build_model(tokenizer(), family, seed=3, layers=2).to(dtype).eval(), tokenizer())


def tah_model(
    family: str, *, lora_scale: float = 0.5, decider: bool = True, seed: int = 0, **config
) -> TaHModel:
    """A TaH model with random non-zero adapters (and a random decider) around a tiny random LM."""
    layers = config.pop("layers", ("gla", "attn", "gla"))
    dtype = config.pop("dtype", torch.float64)
    lm = whitebox(family, layers, dtype)
    cfg = TaHConfig(decider=DeciderSpec(layers=(1, 2), hidden=16, blocks=2), **config)
    model = TaHModel(lm, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * lora_scale)
    if decider:
        model.decider = model.new_decider().to(dtype)
    return model.eval()


def left_padded(vocab: int, lengths=(7, 4, 9), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, width - n :] = torch.randint(3, vocab, (n,), generator=gen)
        mask[r, width - n :] = 1
    return ids, mask


def random_hard(mask: torch.Tensor, rate: float = 0.4, seed: int = 0, max_depth: int = 2) -> torch.Tensor:
    """(B, T) oracle depths: ``max_depth`` at a random share of real positions, 1 elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    hard = (torch.rand(mask.shape, generator=gen) < rate) & mask.bool()
    hard[:, -1] = True
    return 1 + hard.long() * (max_depth - 1)
