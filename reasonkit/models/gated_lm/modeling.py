"""GatedLM: a transformers-compatible hybrid decoder (GLA / gated attention / sLSTM) on reasonkit's kernels.

``GatedLMModel`` is the backbone (embeddings, decoder layers, final RMSNorm) and
``GatedLMForCausalLM`` adds the LM head, the shifted cross-entropy loss and ``generate()``.
Each decoder layer is pre-norm, ``h += mixer(norm(h)); h += SwiGLU(norm(h))``, with the mixer chosen
by ``config.mixer_types`` (see :mod:`reasonkit.models.gated_lm.configuration` for the papers).

White-box access, for the methods that edit the forward (CoLa, Think-at-Hard, HRPO):
- ``model.model.layers`` is an ``nn.ModuleList``; each layer knows its ``layer_type`` and ``layer_idx``.
- ``forward(layer_order=[...])`` runs layers in any order, skipping or repeating them (CoLa's layer
  paths); a cache made by such a forward keeps one state per visit (see :mod:`.cache`).
- ``inputs_embeds`` replaces the embedding lookup; ``output_hidden_states`` returns the embedding
  output and every visited layer's output, the last one after the final norm (transformers' rule:
  ``hidden_states[-1] is last_hidden_state``).

Padding: ``attention_mask`` (1 = token, 0 = pad, left padding as ``generate()`` uses) masks keys in
attention, freezes GLA and sLSTM states over pads, and starts each row's rotary positions at 0 at its
first real token — a padded row gives the same logits as the row alone.

Example::

    import reasonkit.models  # registers "reasonkit_gated_lm" with the Auto classes
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained("path/to/checkpoint")
    out = model.generate(input_ids, attention_mask=mask, max_new_tokens=32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

from reasonkit.models.gated_lm.attention import GatedAttentionMixer
from reasonkit.models.gated_lm.cache import GatedLMCache, MixerCache
from reasonkit.models.gated_lm.configuration import GatedLMConfig
from reasonkit.models.gated_lm.gla import GLAMixer
from reasonkit.models.gated_lm.layers import RMSNorm, RotaryEmbedding, SwiGLU
from reasonkit.models.gated_lm.slstm import SLSTMMixer


class GatedLMDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm residual block: ``h + mixer(norm(h))`` then ``h + SwiGLU(norm(h))``."""

    def __init__(self, config: GatedLMConfig, layer_idx: int) -> None:
        super().__init__()
        assert config.mixer_types is not None and config.intermediate_size is not None
        self.layer_idx = layer_idx
        self.layer_type = config.mixer_types[layer_idx]
        self.input_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mixer: nn.Module
        if self.layer_type == "gla":
            self.mixer = GLAMixer(config)
        elif self.layer_type == "attn":
            self.mixer = GatedAttentionMixer(config)
        else:
            self.mixer = SLSTMMixer(config)
        self.post_mixer_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: MixerCache | None = None,
        slot: int = 0,
    ) -> torch.Tensor:
        """hidden_states (B, T, hidden) -> (B, T, hidden); ``slot`` is this visit's index in the cache."""
        x = self.input_norm(hidden_states)
        if self.layer_type == "attn":
            assert rotary is not None
            x = self.mixer(x, rotary, key_mask=key_mask, cache=cache, slot=slot)
        else:
            x = self.mixer(x, token_mask=token_mask, cache=cache, slot=slot)
        hidden_states = hidden_states + x
        return hidden_states + self.mlp(self.post_mixer_norm(hidden_states))


class GatedLMPreTrainedModel(PreTrainedModel):
    config: GatedLMConfig
    config_class = GatedLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GatedLMDecoderLayer"]  # noqa: RUF012  (transformers declares it per instance)
    # recurrent states cannot be rolled back, so assisted decoding is refused by generate()
    _is_stateful = True

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The model makes its own GatedLMCache; transformers' DynamicCache knows no "gla"/"slstm" layers.
        return False

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq())
        elif isinstance(module, SLSTMMixer):
            module.reset_recurrent_parameters()


def _resolve_layer_order(layer_order: Sequence[int] | None, num_layers: int) -> list[int]:
    if layer_order is None:
        return list(range(num_layers))
    if isinstance(layer_order, torch.Tensor):
        layer_order = layer_order.tolist()
    order = list(layer_order)
    bad = [i for i in order if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_layers]
    if bad:
        raise ValueError(
            f"layer_order entries must be layer indices in [0, {num_layers}), got {bad} in {order}; "
            "skip a layer by leaving it out and repeat one by listing it again"
        )
    return order


def _token_mask(
    attention_mask: torch.Tensor | None, batch: int, new_tokens: int, past: int
) -> torch.Tensor | None:
    """The new tokens' mask (B, T) bool from a 2-D mask over (past + T) or T positions; None = all real."""
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2 or attention_mask.shape[0] != batch:
        raise ValueError(
            f"attention_mask must be 2-D (batch, length) with batch {batch}, got shape "
            f"{tuple(attention_mask.shape)}; GatedLM builds its causal mask itself, pass the 0/1 padding mask"
        )
    length = attention_mask.shape[1]
    if length not in (new_tokens, past + new_tokens):
        raise ValueError(
            f"attention_mask has {length} columns but the call has {new_tokens} new tokens after "
            f"{past} cached ones; give the mask of all {past + new_tokens} tokens or of the {new_tokens} new ones"
        )
    return attention_mask[:, length - new_tokens :].bool()


class GatedLMModel(GatedLMPreTrainedModel):
    """Embeddings, ``layers`` (an indexable ``nn.ModuleList`` of :class:`GatedLMDecoderLayer`), final norm."""

    def __init__(self, config: GatedLMConfig) -> None:
        super().__init__(config)
        assert config.head_dim is not None
        self.embed_tokens: nn.Module = nn.Embedding(
            config.vocab_size, config.hidden_size, config.pad_token_id
        )
        self.layers = nn.ModuleList([GatedLMDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def layer_types(self) -> list[str]:
        """The mixer type of each entry of ``layers``, read from the modules (they may be reordered)."""
        return [str(layer.layer_type) for layer in self.layers]

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: GatedLMCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        layer_order: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast | tuple:
        """Run the decoder.

        Args:
            input_ids / inputs_embeds: (B, T) token ids, or (B, T, hidden) embeddings — exactly one.
            attention_mask: (B, past + T) or (B, T), 1 for tokens and 0 for (left) padding.
            position_ids: (B, T) rotary positions; default counts each row's real tokens from 0.
            cache: a :class:`GatedLMCache` from an earlier call, continued in place.
            use_cache: return a cache (a new one when ``cache`` is None); default True when a cache
                is passed, else ``config.use_cache`` in eval mode and False in training mode.
            layer_order: indices of the layers to run, in order (default all, ascending).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("GatedLMModel.forward: pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        assert inputs_embeds is not None
        B, T = inputs_embeds.shape[:2]
        if use_cache is None:  # a new cache in training would only hold on to the autograd graph
            use_cache = cache is not None or (self.config.use_cache and not self.training)
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        order = _resolve_layer_order(layer_order, len(self.layers))
        if cache is not None:
            cache.check_continuation(order, B)
        elif use_cache:
            cache = GatedLMCache(self.layer_types(), order)
        past = cache.seen_tokens if cache is not None else 0

        token_mask = _token_mask(attention_mask, B, T, past)
        start = cache.positions if cache is not None and cache.positions is not None else None
        if position_ids is None:
            steps = torch.arange(1, T + 1, device=inputs_embeds.device).expand(B, T)
            counts = steps if token_mask is None else token_mask.long().cumsum(1)  # real tokens so far
            position_ids = (counts - 1).clamp(min=0) + (0 if start is None else start[:, None])  # type: ignore[assignment]
        key_mask = token_mask
        if cache is not None:
            new_mask = (
                token_mask if token_mask is not None else inputs_embeds.new_ones((B, T), dtype=torch.bool)
            )
            key_mask = cache.append_mask(new_mask)  # (B, past + T)
        # without masks the kernels take faster paths, and a decode step runs the step kernels
        if token_mask is not None and bool(token_mask.all()):
            token_mask = None
        if key_mask is not None and bool(key_mask.all()):
            key_mask = None

        types = self.layer_types()
        needs_rotary = any(types[i] == "attn" for i in order)
        rotary = self.rotary(position_ids, inputs_embeds.dtype) if needs_rotary else None
        hidden_states = inputs_embeds
        all_hidden: tuple[torch.Tensor, ...] = (hidden_states,)
        for slot, idx in enumerate(order):
            hidden_states = self.layers[idx](
                hidden_states, token_mask=token_mask, key_mask=key_mask, rotary=rotary, cache=cache, slot=slot
            )
            all_hidden += (hidden_states,)
        hidden_states = self.norm(hidden_states)
        if cache is not None:
            real = (
                torch.full((B,), T, device=hidden_states.device) if token_mask is None else token_mask.sum(1)
            )
            cache.advance(T, real)

        out = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,  # type: ignore[arg-type]  # duck-typed like transformers' xLSTMCache
            hidden_states=(*all_hidden[:-1], hidden_states) if output_hidden_states else None,
        )
        return out if return_dict else out.to_tuple()


class GatedLMForCausalLM(GatedLMPreTrainedModel, GenerationMixin):
    """GatedLM with a language-modelling head; ``generate()`` decodes with the kernels' step functions."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}  # noqa: RUF012  (as transformers')

    def __init__(self, config: GatedLMConfig) -> None:
        super().__init__(config)
        self.model = GatedLMModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: GatedLMCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        layer_order: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple:
        """As :meth:`GatedLMModel.forward`, plus ``labels`` (B, T) for the shifted next-token
        cross-entropy (-100 ignored) and ``logits_to_keep`` (compute logits for the last N positions
        only; 0 = all)."""
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            layer_order=layer_order,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )
        out = CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return out if return_dict else out.to_tuple()
