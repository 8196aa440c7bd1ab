"""The trained policy: a LoRA-wrapped causal LM plus HRPO's hybrid-input gates, and its forwards.

- :meth:`Policy.forward` is the loss forward: teacher-forced over a :class:`~.rollout.Rollout` with the
  rollout's attention mask and rotary positions (the reference forgot both, deep notes §2.2), the
  inputs rebuilt exactly as the decode fed them — ê at plain columns, the gated mix of ê and the
  stored h at thinking columns — so its ℓ equals the ℓ recorded while decoding. The gates are
  recomputed with gradient; h is a constant (the reference's design). With ``two_pass`` a first pass
  recomputes h from its own logits and a second pass feeds it, so the gradient also flows through
  the hidden mix (one step of the pathwise term; the loss value is unchanged, since on-policy the
  recomputed h equals the stored one).
- :meth:`Policy.reference_logprobs` is the KL reference: the base model (adapter off), token ids
  only, no mixing (reference ``rl_replacements.py:404-405``).
- ℓ is log softmax(z/τ) at the chosen token: the tempered distribution the rollout sampled from
  (with top-k the sampler renormalises over the k best tokens; ℓ stays on the full vocabulary, so
  the reference's ℓ_ref is finite for every token the policy may emit; docs/hrpo.md).

LoRA (peft): rank 32 / α 64 on q, k, v, o, gate, up, down for Hugging Face models (the paper); rank
8 / α 16 on every linear projection of the 3.5M built-in GatedLM (hidden 192: rank 8 keeps the
paper's rank-to-width ratio of a few percent). Dropout 0, so the loss forward matches the decode.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reasonkit.hrpo.gate import HybridInput, project_distribution
from reasonkit.hrpo.rollout import Rollout
from reasonkit.models.sampling import sampling_warpers
from reasonkit.models.whitebox import WhiteBoxLM, open_whitebox

#: the paper's LoRA targets (Qwen2.5 / Llama names)
HF_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_defaults(model: nn.Module) -> tuple[int, int, Any]:
    """(rank, alpha, target_modules) for a model: the paper's for HF models, smaller for GatedLM."""
    if getattr(getattr(model, "config", None), "model_type", "") == "reasonkit_gated_lm":
        return 8, 16, "all-linear"
    return 32, 64, list(HF_LORA_TARGETS)


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, T): at column t the tempered log-prob of token t given the columns before it (column 0: 0)."""
    z = logits[:, :-1].float() / temperature
    chosen = z.gather(2, ids[:, 1:, None])[..., 0] - torch.logsumexp(z, dim=-1)
    return F.pad(chosen, (1, 0))


class Policy(nn.Module):
    """``model``: a peft ``PeftModel``; ``mixer``: the hybrid input (None for GRPO)."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        mixer: HybridInput | None,
        *,
        temperature: float,
        top_k: int,
        hidden_source: str = "projection",
    ) -> None:
        super().__init__()
        self.model: Any = model  # a peft PeftModel (typed loosely, as WhiteBoxLM.model)
        self.mixer = mixer
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.top_k = top_k
        self.hidden_source = hidden_source
        self._lm: WhiteBoxLM | None = None

    @property
    def lm(self) -> WhiteBoxLM:
        """The white-box handle over the adapted model (LoRA layers in place)."""
        if self._lm is None:
            inner = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            self._lm = open_whitebox(inner, self.tokenizer)
        return self._lm

    def inputs(self, batch: Rollout, hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The inputs the decode fed (B, T, H) and the embedding share a (None without mixing)."""
        lm = self.lm
        embeds = lm.embed(batch.input_ids)
        if self.mixer is None or hidden is None:
            return embeds, None
        mixed, a = self.mixer(embeds, hidden.to(embeds.device))
        return torch.where(batch.thinking[..., None], mixed, embeds), a

    def run(self, inputs: torch.Tensor, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, T, V), final hidden (B, T, H)) of a teacher-forced pass with the rollout's mask and positions."""
        out = self.lm.forward(
            inputs,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
        return self.lm.logits(out.hidden), out.hidden

    def forward(self, batch: Rollout, two_pass: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(ℓ (B, T) at every column, a (B, T, H) or None) of the policy on the rollout's inputs."""
        stored = batch.hidden.detach() if batch.hidden is not None else None  # a constant: no gradient to h
        inputs, a = self.inputs(batch, stored)
        logits, final = self.run(inputs, batch)
        if two_pass and self.mixer is not None and batch.hidden is not None:
            inputs, a = self.inputs(batch, self.recompute_hidden(logits, final))
            logits, _ = self.run(inputs, batch)
        return token_logprobs(logits, batch.input_ids, self.temperature), a

    def recompute_hidden(self, logits: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
        """h at every column from the previous column's pass-1 output (with gradient)."""
        if self.hidden_source == "last_hidden":
            source = final[:, :-1]
        else:
            warpers = sampling_warpers(self.temperature, self.top_k)
            B, T1, V = logits[:, :-1].shape
            warped = warpers(None, logits[:, :-1].float().reshape(B * T1, V))  # type: ignore[arg-type]
            source = project_distribution(torch.softmax(warped, -1), self.lm.embedding_matrix).view(B, T1, -1)
        return F.pad(source, (0, 0, 1, 0))

    @torch.no_grad()
    def reference_logprobs(self, batch: Rollout) -> torch.Tensor:
        """ℓ_ref (B, T) of the base model: adapter off, token ids only (no hybrid input)."""
        context = (
            self.model.disable_adapter()
            if hasattr(self.model, "disable_adapter")
            else contextlib.nullcontext()
        )
        with context:
            logits, _ = self.run(self.lm.embed(batch.input_ids), batch)
        return token_logprobs(logits, batch.input_ids, self.temperature)

    def parameter_groups(
        self, lr: float, lr_gates: float, lr_lambda: float, weight_decay: float
    ) -> list[dict]:
        """LoRA, gate linears and Λ as separate AdamW groups (reference ``patch.py``), all with weight decay."""
        lora = [p for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [{"params": lora, "lr": lr, "weight_decay": weight_decay, "name": "lora"}]
        if self.mixer is not None and self.mixer.mode == "hrpo":
            gates = [*self.mixer.gate_r.parameters(), *self.mixer.gate_i.parameters()]
            groups.append({"params": gates, "lr": lr_gates, "weight_decay": weight_decay, "name": "gates"})
            groups.append(
                {
                    "params": [self.mixer.Lambda],
                    "lr": lr_lambda,
                    "weight_decay": weight_decay,
                    "name": "lambda",
                }
            )
        return groups


def wrap_lora(model: nn.Module, rank: int | None, alpha: int | None, seed: int) -> nn.Module:
    """``model`` with LoRA adapters (peft) on its linear projections; only the adapters train.
    LoRA's A matrices are drawn from a generator seeded with ``seed`` (the same in every process)."""
    from peft import LoraConfig, get_peft_model

    default_rank, default_alpha, targets = lora_defaults(model)
    config = LoraConfig(
        r=rank or default_rank,
        lora_alpha=alpha or default_alpha,
        target_modules=targets,
        lora_dropout=0.0,
        bias="none",
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        wrapped = get_peft_model(model, config)  # type: ignore[arg-type]
    finally:
        torch.random.set_rng_state(state)
    return wrapped
