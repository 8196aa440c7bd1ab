"""The white-box handle: a causal LM opened up for methods that edit its forward.

Three methods need more than ``generate``:
  - chain-of-layers search (CoLa) runs an arbitrary *layer path* — layers skipped or repeated;
  - Think-at-Hard (TaH) runs extra *latent depths* over chosen tokens, attending across depths;
  - HRPO replaces the *input embeddings* of the next step.
:class:`WhiteBoxLM` serves all three over one forward::

    out = lm.forward(lm.embed(ids), attention_mask=mask, path=(0, 1, 1, 3), cache=cache)
    logits = lm.logits(out.hidden[:, -1])                # (B, V)

``forward`` takes embeddings (so a method can feed anything), runs the occurrences of ``path`` in
order with one cache slot per (occurrence, depth) (:class:`~.cache.SlotCache`), returns the final
normed hidden states and any selected intermediate ones, and leaves every module as it found it.
Adapters implement four small pieces: the layer list, rotary tables, the mask format and the call
of one layer (:mod:`.llama` for Hugging Face Llama-family decoders, :mod:`.gated` for GatedLM).
:func:`open_whitebox` picks the adapter for a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reasonkit.models.whitebox.cache import SlotCache, check_path


@dataclass
class WhiteBoxOutput:
    """What :meth:`WhiteBoxLM.forward` returns.

    ``hidden``: (B, T, hidden) after the model's final norm (feed it to :meth:`WhiteBoxLM.logits`).
    ``hidden_states``: the requested intermediate states (before the final norm), keyed by index in
    the path's outputs: 0 = the input embeddings, i = the output of the i-th occurrence.
    ``cache``: the continued cache (None when the forward was asked not to keep one).
    """

    hidden: torch.Tensor
    hidden_states: dict[int, torch.Tensor]
    cache: SlotCache | None


class WhiteBoxLM(ABC):
    """A causal LM as embeddings, a list of decoder layers, a final norm and an LM head."""

    #: "llama" (HF Llama family) or "gated_lm"
    family: str = ""

    def __init__(self, model: nn.Module, tokenizer: Any = None) -> None:
        #: the wrapped transformers model (typed loosely: each family names its parts differently)
        self.model: Any = model
        self.tokenizer = tokenizer

    # ---- the parts ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def layers(self) -> nn.ModuleList: ...

    @property
    @abstractmethod
    def embed_tokens(self) -> nn.Embedding: ...

    @property
    @abstractmethod
    def final_norm(self) -> nn.Module: ...

    @property
    def lm_head(self) -> nn.Linear:
        head = self.model.get_output_embeddings()
        assert isinstance(head, nn.Linear)
        return head

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """(V, hidden): the input embeddings' weight (HRPO projects distributions onto it)."""
        return self.embed_tokens.weight

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.embedding_matrix.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.lm_head.weight.shape[0])

    @property
    def device(self) -> torch.device:
        return self.embedding_matrix.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_matrix.dtype

    def layer_kinds(self) -> list[str]:
        """Per layer: "attn" (keys/values in the cache) or "recurrent" (a state in the cache)."""
        return ["attn"] * self.num_layers

    def default_path(self) -> tuple[int, ...]:
        return tuple(range(self.num_layers))

    # ---- what methods call ----------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, hidden) input embeddings (with the model's embedding scale)."""
        return self.embed_tokens(ids.to(self.device))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from hidden states that went through the final norm (``WhiteBoxOutput.hidden``)."""
        return self.lm_head(hidden)

    def new_cache(self, batch_size: int, path: Sequence[int] | None = None) -> SlotCache:
        """An empty cache for a batch and a layer path (default: every layer once)."""
        return SlotCache(check_path(path, self.num_layers), batch_size, self.device)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        path: Sequence[int] | None = None,
        cache: SlotCache | None = None,
        depth: int = 0,
        columns: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        hidden_states: Sequence[int] = (),
        use_cache: bool = True,
        rows: torch.Tensor | None = None,
        attend: Sequence[int] | None = None,
    ) -> WhiteBoxOutput:
        """Run ``path`` over ``inputs_embeds`` (B, T, hidden).

        Args:
            attention_mask: (B, T) 1 for tokens, 0 for (left) padding; default all tokens.
            path: layer indices to run in order, skips and repeats allowed (default: all, once);
                must equal the cache's path when a cache is continued.
            cache: a :class:`SlotCache` from :meth:`new_cache` or an earlier call, continued in place.
            depth: the latent depth of this pass. Depth 0 extends the sequence; a deeper pass re-runs
                tokens already seen at depth ``depth - 1`` (Think-at-Hard) and needs ``columns``.
            columns: (B, T) the tokens' indices in the padded sequence (default: the next ones).
            position_ids: (B, T) rotary positions (default: depth 0 counts each row's real tokens;
                deeper passes reuse the depth-0 position of their column).
            hidden_states: indices of intermediate states to return (0 = embeddings).
            use_cache: keep the cache (False: a throw-away cache serves this call only).
            rows: (b,) the batch rows a deeper pass runs over (default all); ``inputs_embeds`` then
                has b rows and the other rows' slots are left as they are.
            attend: the depths this pass's queries see (default 0..depth; Think-at-Hard's ablations
                attend to depth 0 only, or to their own depth only).
        """
        B, T = inputs_embeds.shape[:2]
        order = check_path(
            path if path is not None else (cache.path if cache is not None else None), self.num_layers
        )
        if cache is None:
            cache = SlotCache(order, B, inputs_embeds.device)
        elif cache.path != order:
            raise ValueError(
                f"this cache was made for the layer path {list(cache.path)} but the forward runs {list(order)}; "
                "a cache holds one state per occurrence, so continue it with the same path (or start a new one)"
            )
        if rows is not None:
            rows = torch.as_tensor(rows, dtype=torch.long, device=cache.device)
        cache.check_batch(B, rows)
        self.check_depth(depth, order)
        valid = (
            torch.ones(B, T, dtype=torch.bool, device=inputs_embeds.device)
            if attention_mask is None
            else _check_mask(attention_mask, B, T).to(inputs_embeds.device)
        )
        columns, position_ids = self._columns_and_positions(cache, depth, valid, columns, position_ids, rows)
        cache.begin(depth, columns, position_ids, valid, rows=rows, attend=attend)
        visible = cache.visible(depth, columns)  # (B, T, keys)
        wanted = set(hidden_states)
        bad = sorted(i for i in wanted if not 0 <= i <= len(order))
        if bad:
            raise ValueError(f"hidden_states indices must be in [0, {len(order)}] for this path, got {bad}")
        collected: dict[int, torch.Tensor] = {0: inputs_embeds} if 0 in wanted else {}
        prepared = self.prepare(inputs_embeds, position_ids, visible, valid, cache, depth)
        hidden = inputs_embeds
        for occurrence, layer_idx in enumerate(order):
            hidden = self.run_layer(layer_idx, occurrence, hidden, prepared)
            if occurrence + 1 in wanted:
                collected[occurrence + 1] = hidden
        cache.finish(depth, T, valid.sum(1))
        return WhiteBoxOutput(self.final_norm(hidden), collected, cache if use_cache else None)

    # ---- adapter hooks --------------------------------------------------------------------------
    def check_depth(self, depth: int, path: Sequence[int]) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be a whole number >= 0, got {depth!r}")

    @abstractmethod
    def prepare(
        self,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        visible: torch.Tensor,
        valid: torch.Tensor,
        cache: SlotCache,
        depth: int,
    ) -> Any:
        """Per-forward values every layer call shares (rotary tables, the mask in the layers' format)."""

    @abstractmethod
    def run_layer(self, layer_idx: int, occurrence: int, hidden: torch.Tensor, prepared: Any) -> torch.Tensor:
        """Run layer ``layer_idx`` as occurrence ``occurrence`` of the path: (B, T, hidden) -> same."""

    # ---- helpers --------------------------------------------------------------------------------
    def _columns_and_positions(
        self,
        cache: SlotCache,
        depth: int,
        valid: torch.Tensor,
        columns: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = valid.shape
        device = valid.device
        if depth == 0:
            expected = cache.columns + torch.arange(T, device=device).expand(B, T)
            if columns is not None and not torch.equal(columns.to(device), expected):
                raise ValueError("a depth-0 pass continues the sequence: its columns are the next ones")
            columns = expected
            if position_ids is None:
                before = valid.long().cumsum(1) - valid.long()  # real tokens before each one in this call
                position_ids = cache.next_positions[:, None] + before
            return columns, position_ids.to(device)
        if columns is None:
            raise ValueError(f"a depth-{depth} pass re-runs tokens already seen: give their columns (B, T)")
        columns = columns.to(device)
        if position_ids is None:
            seen_cols, seen_pos, _ = cache.entries(0)
            if rows is not None:
                seen_cols, seen_pos = seen_cols.index_select(0, rows), seen_pos.index_select(0, rows)
            # the depth-0 entry of each column holds its rotary position
            match = seen_cols[:, None, :] == columns[:, :, None]  # (B, T, n0)
            if not bool(match.any(-1)[valid].all()):
                raise ValueError(f"every column of a depth-{depth} pass must have been seen at depth 0")
            position_ids = (match.long() * seen_pos[:, None, :]).sum(-1)
        return columns, position_ids.to(device)


def _check_mask(mask: torch.Tensor, B: int, T: int) -> torch.Tensor:
    if mask.shape != (B, T):
        raise ValueError(
            f"attention_mask must be (batch, new tokens) = {(B, T)}, 1 for tokens and 0 for padding; got "
            f"shape {tuple(mask.shape)} (the cache remembers earlier tokens' padding)"
        )
    return mask.bool()


def open_whitebox(model: nn.Module, tokenizer: Any = None) -> WhiteBoxLM:
    """The white-box handle for ``model``: GatedLM, or a Hugging Face Llama-family decoder (Llama,
    Qwen2, Qwen3, Mistral); anything else is refused with the families that are supported."""
    from reasonkit.models.gated_lm.modeling import GatedLMForCausalLM
    from reasonkit.models.whitebox.gated import GatedLMWhiteBox
    from reasonkit.models.whitebox.llama import LLAMA_FAMILY, LlamaWhiteBox

    if isinstance(model, GatedLMForCausalLM):
        return GatedLMWhiteBox(model, tokenizer)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in LLAMA_FAMILY:
        return LlamaWhiteBox(model, tokenizer)
    raise ValueError(
        f"no white-box adapter for {type(model).__name__} (model_type {model_type!r}); supported: GatedLM "
        f"(reasonkit_gated_lm) and the Llama family ({', '.join(sorted(LLAMA_FAMILY))})"
    )
