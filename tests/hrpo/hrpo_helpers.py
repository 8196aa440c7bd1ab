"""Tiny HRPO policies and rollouts shared by the tests of this folder (real models, random weights)."""

from __future__ import annotations

import torch
from models.gated_lm_helpers import make_model
from tiny_models import build_model

from reasonkit.hrpo.build import build_policy, decode_hooks
from reasonkit.hrpo.rollout import rollout_generator, sample

TAU, TOP_K, DELIMITER = 0.7, 20, "answer is"
TEXTS = ("Question: what is", "The quick brown fox jumps over", "user")


def tiny(family: str, tokenizer) -> torch.nn.Module:
    if family == "gated_lm":
        model = make_model(["gla", "attn", "gla"], dtype=torch.float32, vocab_size=len(tokenizer))
    else:
        model = build_model(tokenizer, family).float()
    with torch.no_grad():  # logits of a few units, so float32 rounding stays well below 1e-5
        model.model.norm.weight.mul_(0.1 if family != "gated_lm" else 0.15)
    return model


def policy_for(family: str, tokenizer, mode: str = "hrpo"):
    policy = build_policy(
        tiny(family, tokenizer), tokenizer, mode=mode, temperature=TAU, top_k=TOP_K, lora_rank=4,
        lora_alpha=8, r_min=0.3, r_max=0.6, fixed_a=None, seed=0,
    )  # fmt: skip
    with torch.no_grad():  # a trained-looking adapter and open gates: every part of the path matters
        gen = torch.Generator().manual_seed(1)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        if policy.mixer is not None and mode != "fixed-interp":
            policy.mixer.gate_r.weight.normal_(0, 0.5, generator=gen)
    return policy


def roll(policy, tokenizer, seed: int = 0, max_new_tokens: int = 24):
    card = {"mode": "raw-hidden" if policy.hidden_source == "last_hidden" else "hrpo", "temperature": TAU,
            "top_k": TOP_K, "delimiter": DELIMITER}  # fmt: skip
    hooks = decode_hooks(policy.mixer, tokenizer, card, record=True)
    prompts = [tokenizer(t)["input_ids"] for t in TEXTS]
    generators = [rollout_generator(seed, 0, i, 0) for i in range(len(prompts))]
    return sample(policy.lm, hooks, prompts, generators, max_new_tokens=max_new_tokens, top_k=TOP_K,
                  eos_ids=[2], stop=[], pad_id=0)  # fmt: skip
