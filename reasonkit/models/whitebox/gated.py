"""White-box adapter for GatedLM (reasonkit's hybrid GLA / gated-attention / sLSTM decoder).

GatedLM's layers take a cache and a slot index through the ``MixerCache`` protocol, so the adapter
hands them :meth:`SlotCache.at_depth` (slot = occurrence) and a per-query mask for the attention
layers; GLA and sLSTM layers read and write their occurrence's recurrent state and freeze it over
padding (``token_mask``).

Latent depth > 0 is defined for attention layers (a deeper query sees every shallower key up to its
column) and for GLA layers (one state per depth, all decayed by the first pass's gates; the rule and
its derivation are in :mod:`.gla_depth`). sLSTM has no such rule yet, so a deeper pass through a path
that holds an sLSTM layer is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reasonkit.models.whitebox.cache import SlotCache
from reasonkit.models.whitebox.gla_depth import gla_layer
from reasonkit.models.whitebox.handle import WhiteBoxLM


@dataclass
class _Prepared:
    rotary: tuple[torch.Tensor, torch.Tensor] | None
    key_mask: torch.Tensor | None  # None, key padding (B, keys) or per query (B, T, keys), bool
    token_mask: torch.Tensor | None  # (B, T) bool, None when every token is real
    view: Any
    cache: SlotCache
    depth: int
    columns: torch.Tensor  # (B, T)
    valid: torch.Tensor  # (B, T) bool


class GatedLMWhiteBox(WhiteBoxLM):
    """:class:`~.handle.WhiteBoxLM` over :class:`~reasonkit.models.gated_lm.GatedLMForCausalLM`."""

    family = "gated_lm"

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.model.layers  # type: ignore[no-any-return]

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.model.model.embed_tokens  # type: ignore[no-any-return]

    @property
    def final_norm(self) -> nn.Module:
        return self.model.model.norm  # type: ignore[no-any-return]

    def layer_kinds(self) -> list[str]:
        return ["attn" if t == "attn" else "recurrent" for t in self.model.model.layer_types()]

    def check_depth(self, depth: int, path: Sequence[int]) -> None:
        super().check_depth(depth, path)
        types = self.model.model.layer_types()
        slstm = sorted({i for i in path if types[i] == "slstm"})
        if depth > 0 and slstm:
            raise ValueError(
                f"a depth-{depth} pass through sLSTM layers {slstm} needs a rule for their state at deeper "
                "depths, which is defined for GLA and attention layers only; run deeper passes through a "
                "path without sLSTM layers"
            )

    def prepare(
        self,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        visible: torch.Tensor,
        valid: torch.Tensor,
        cache: SlotCache,
        depth: int,
    ) -> _Prepared:
        needs_rotary = any(k == "attn" for k in self.layer_kinds())
        rotary = self.model.model.rotary(position_ids, inputs_embeds.dtype) if needs_rotary else None
        token_mask = None if bool(valid.all()) else valid
        key_mask: torch.Tensor | None = visible
        if depth == 0:
            # depth 0 alone is the ordinary causal band over the padded sequence: pass it in the form
            # GatedLM's own forward uses (key padding, or nothing), so both give identical logits
            _, _, keys_valid = cache.entries(0)
            key_mask = None if bool(keys_valid.all()) else keys_valid
        return _Prepared(
            rotary, key_mask, token_mask, cache.at_depth(depth), cache, depth, cache.pass_columns, valid
        )

    def run_layer(self, layer_idx: int, occurrence: int, hidden: torch.Tensor, prepared: Any) -> torch.Tensor:
        p: _Prepared = prepared
        layer = self.layers[layer_idx]
        if layer.layer_type == "gla":
            attend = p.cache.attending(p.depth)
            return gla_layer(layer, hidden, p.cache, occurrence, p.depth, p.columns, p.valid, attend)
        return layer(  # type: ignore[no-any-return]
            hidden,
            token_mask=p.token_mask,
            key_mask=p.key_mask,
            rotary=p.rotary,
            cache=p.view,
            slot=occurrence,
        )
