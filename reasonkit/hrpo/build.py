"""Building an HRPO policy from a base model, for training (:mod:`.train`) and as a backend (:mod:`.backend`).

The mode decides the input while thinking: ``hrpo`` (gated hybrid of ê and the projection h),
``raw-hidden`` (the same gates fed the raw last hidden state), ``fixed-interp`` (the projection with
a constant a, no gates) and ``grpo`` (plain token embeddings: no mixer at all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reasonkit.hrpo.gate import HybridInput
from reasonkit.hrpo.policy import Policy, wrap_lora
from reasonkit.hrpo.rollout import HybridHooks


def hidden_source(mode: str) -> str:
    return "last_hidden" if mode == "raw-hidden" else "projection"


def make_mixer(
    mode: str, hidden: int, r_min: float, r_max: float, fixed_a: float | None, seed: int, like: torch.Tensor
) -> HybridInput | None:
    """The hybrid input of ``mode`` (None for grpo), initialised from ``seed``, on ``like``'s device and dtype."""
    if mode == "grpo":
        return None
    generator = torch.Generator().manual_seed(seed)
    mixer = HybridInput(
        hidden,
        mode="fixed" if mode == "fixed-interp" else "hrpo",
        r_min=r_min,
        r_max=r_max,
        fixed_a=fixed_a,
        generator=generator,
    )
    return mixer.to(device=like.device, dtype=like.dtype)


def build_policy(
    model: Any,
    tokenizer: Any,
    *,
    mode: str,
    temperature: float,
    top_k: int,
    lora_rank: int | None,
    lora_alpha: int | None,
    r_min: float,
    r_max: float,
    fixed_a: float | None,
    seed: int,
) -> Policy:
    """A trainable policy: LoRA on ``model`` (base weights frozen) plus the mode's hybrid input."""
    embedding = model.get_input_embeddings().weight
    mixer = make_mixer(mode, int(embedding.shape[1]), r_min, r_max, fixed_a, seed, embedding)
    wrapped = wrap_lora(model, lora_rank, lora_alpha, seed)
    return Policy(
        wrapped, tokenizer, mixer, temperature=temperature, top_k=top_k, hidden_source=hidden_source(mode)
    )


def load_policy_weights(policy: Policy, directory: Path) -> None:
    """Put a saved adapter and mixer (``OUT/checkpoint/policy``) into a freshly built policy."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = directory / "adapter_model.safetensors"
    if not adapter.is_file():
        raise FileNotFoundError(f"{adapter} is missing; delete {directory.parent} to start the run over")
    result = set_peft_model_state_dict(policy.model, load_file(adapter))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"{adapter} does not fit this model (unexpected {unexpected[:3]}); pass a new --out")
    if policy.mixer is not None and any(True for _ in policy.mixer.parameters()):
        policy.mixer.load_state_dict(load_file(directory / "mixer.safetensors"))


def decode_hooks(
    mixer: HybridInput | None, tokenizer: Any, card: dict[str, Any], record: bool = False
) -> HybridHooks:
    """The hooks that decode a policy as it was trained (τ, top-k, delimiter, h source from its card)."""
    return HybridHooks(
        mixer,
        tokenizer,
        temperature=float(card["temperature"]),
        top_k=int(card["top_k"]),
        delimiter=str(card["delimiter"]),
        hidden_source=hidden_source(str(card["mode"])),
        record=record,
    )
