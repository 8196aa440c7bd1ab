"""White-box adapter for Hugging Face decoders of the Llama family (Llama, Qwen2, Qwen3, Mistral).

They share ``model.model.{embed_tokens, layers, norm, rotary_emb}`` and ``lm_head``, and each
decoder layer's attention calls ``cache.update(keys, values, layer_idx)``. The adapter drives the
layers itself: before each occurrence of the path it hands the layer a :class:`_OccurrenceCache`
that stores the keys/values in that occurrence's slot of the :class:`~.cache.SlotCache` (the
module's own ``layer_idx`` is ignored, never changed), and it passes one 4-D mask computed from the
cache's entries — in the format of the model's attention implementation (SDPA: bool, True =
attend; eager: additive float) — and the rotary tables of the tokens' positions.

Not applied: sliding-window attention (Mistral's ``sliding_window``): every layer attends to the
whole visible past, as when the window exceeds the sequence. Flash-attention implementations take no
4-D masks and are refused with the fix.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reasonkit.models.whitebox.cache import SlotCache
from reasonkit.models.whitebox.handle import WhiteBoxLM

#: ``config.model_type`` values whose decoders this adapter runs
LLAMA_FAMILY = frozenset({"llama", "qwen2", "qwen3", "mistral"})
_MASK_FORMATS = {"sdpa": "bool", "eager": "additive"}


class _OccurrenceCache:
    """What one decoder layer sees as its ``cache``: appends to slot (occurrence, depth)."""

    def __init__(self, cache: SlotCache, occurrence: int, depth: int) -> None:
        self.cache, self.occurrence, self.depth = cache, occurrence, depth

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # HF layout (B, Hkv, T, D): time is dimension 2
        return self.cache.update_kv(self.occurrence, self.depth, key_states, value_states, time_dim=2)


@dataclass
class _Prepared:
    mask: torch.Tensor | None
    position_ids: torch.Tensor
    position_embeddings: tuple[torch.Tensor, torch.Tensor]
    cache: SlotCache
    depth: int


class LlamaWhiteBox(WhiteBoxLM):
    """:class:`~.handle.WhiteBoxLM` over ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` / ``Qwen3ForCausalLM`` /
    ``MistralForCausalLM``."""

    family = "llama"

    def __init__(self, model: nn.Module, tokenizer: Any = None) -> None:
        super().__init__(model, tokenizer)
        backbone: Any = getattr(model, "model", None)
        missing = [a for a in ("embed_tokens", "layers", "norm", "rotary_emb") if not hasattr(backbone, a)]
        if missing:
            raise ValueError(
                f"{type(model).__name__} does not have the Llama-family layout (model.model.{{embed_tokens, "
                f"layers, norm, rotary_emb}}): missing {missing}"
            )
        implementation = getattr(model.config, "_attn_implementation", None) or "eager"
        if implementation not in _MASK_FORMATS:
            raise ValueError(
                f"the white-box forward passes 4-D attention masks, which attn_implementation="
                f"{implementation!r} does not take; load the model with attn_implementation='sdpa' (or 'eager')"
            )
        self.mask_format = _MASK_FORMATS[implementation]
        self.backbone: Any = backbone
        # transformers 5.25 renamed the layers' `past_key_values` argument to `cache`
        params = inspect.signature(type(self.backbone.layers[0]).forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @property
    def layers(self) -> nn.ModuleList:
        return self.backbone.layers  # type: ignore[no-any-return]

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.backbone.embed_tokens  # type: ignore[no-any-return]

    @property
    def final_norm(self) -> nn.Module:
        return self.backbone.norm  # type: ignore[no-any-return]

    def prepare(
        self,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        visible: torch.Tensor,
        valid: torch.Tensor,
        cache: SlotCache,
        depth: int,
    ) -> _Prepared:
        B, T, K = visible.shape
        mask: torch.Tensor | None = visible[:, None]  # (B, 1, T, keys)
        if self.mask_format == "bool":
            # what transformers itself does: no mask where SDPA's own causal rule (or none) is exact
            plain_causal = (
                T == K
                and bool(valid.all())
                and bool(
                    torch.equal(
                        visible,
                        torch.ones(T, T, dtype=torch.bool, device=visible.device).tril().expand(B, T, T),
                    )
                )
            )
            if plain_causal or (T == 1 and bool(visible.all())):
                mask = None
        else:
            assert mask is not None
            mask = torch.zeros(mask.shape, dtype=inputs_embeds.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(inputs_embeds.dtype).min
            )
        rotary = self.backbone.rotary_emb(inputs_embeds, position_ids=position_ids)
        return _Prepared(mask, position_ids, rotary, cache, depth)

    def run_layer(self, layer_idx: int, occurrence: int, hidden: torch.Tensor, prepared: Any) -> torch.Tensor:
        p: _Prepared = prepared
        out = self.layers[layer_idx](
            hidden,
            attention_mask=p.mask,
            position_ids=p.position_ids,
            position_embeddings=p.position_embeddings,
            use_cache=True,
            **{self._cache_arg: _OccurrenceCache(p.cache, occurrence, p.depth)},
        )
        return out[0] if isinstance(out, tuple) else out
