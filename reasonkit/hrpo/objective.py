"""HRPO's objective: group-normalised advantages, the k3 KL estimate and the per-token policy loss.

From the reference (deep notes §2.2; TRL ``grpo_trainer.py:640-646``, unsloth
``rl_replacements.py:237-276``)::

    A_j   = (R_j − mean_group R) / (std_group R + 1e-4)             std with Bessel's correction, as TRL
    KL₃   = exp(ℓ_ref − ℓ) − (ℓ_ref − ℓ) − 1                          ≥ 0, 0 iff ℓ = ℓ_ref
    L_tok = −(exp(ℓ − sg ℓ) · A − β · KL₃)                           β = 0.005
    L     = mean over sequences of (mean over the sequence's completion tokens of L_tok)

Strictly on-policy (one update per rollout batch, no ratio clipping): exp(ℓ − sg ℓ) is 1 in value and
its gradient is ∇ℓ, so the update is REINFORCE with group-normalised advantages plus the k3 KL.
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """rewards (P·G,) with each prompt's G completions adjacent -> advantages (P·G,)."""
    if group_size < 2:
        raise ValueError(
            f"group-relative advantages need at least 2 completions per prompt, got {group_size}"
        )
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.float().view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred / (groups.std(dim=1, keepdim=True) + eps)).view(-1)


def kl3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(π ‖ π_ref) per token (Schulman's unbiased, non-negative estimator)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


def policy_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean KL₃ per sequence (B,)) from ℓ, ℓ_ref (B, T), advantages (B,) and the completion mask (B, T)."""
    mask = mask.to(logprobs.dtype)
    kl = kl3(logprobs, ref_logprobs)
    ratio = torch.exp(logprobs - logprobs.detach())  # 1 in value; ∇ = ∇ℓ
    per_token = -(ratio * advantages[:, None] - beta * kl)
    tokens = mask.sum(1).clamp_min(1.0)
    per_sequence = (per_token * mask).sum(1) / tokens
    return per_sequence.mean(), ((kl * mask).sum(1) / tokens).detach()
