"""HRPO's hybrid input: the gate that mixes a sampled token's embedding with a hidden vector.

Paper: "Hybrid Latent Reasoning via Reinforcement Learning" (Yue et al., arXiv 2505.18454); the
formulas are the reference code's (``Yueeeeeeee/HRPO``, ``modeling_qwen2.py:469-534``), read in
../shared/research/whitebox-methods-deep.md §2.2::

    r = σ(W_r ê + b_r),  i = σ(W_i ê + b_i)          ê: embedding of the sampled token (…, H)
    a = exp(−c · softplus(−Λ) · r) = σ(Λ)^(c·r)       c = 8, Λ ∈ R^H
    x̃ = a ⊙ ê + sqrt(1 − a² + 1e-8) ⊙ (i ⊙ h)        h: the hidden vector (projection below)

    h = Eᵀ p / ‖p‖₂                                    p: the sampling distribution (τ, top-k)

Λ is initialised so that a at r = 1 is uniform in [r_min, r_max] (0.99–0.999: the input starts as
almost the plain token embedding); W_r, W_i start N(0, 0.02) with zero bias, so r ≈ i ≈ 0.5.

Three input modes share one interface (:class:`HybridInput`): ``"hrpo"`` (the gates above),
``"fixed"`` (the paper's collapse ablation "interpolation without gates": a constant a, no r, i, Λ)
and :func:`project_distribution` versus the raw last hidden state, which the rollout chooses
(``hidden_source``). GRPO is the trainer with no hybrid input at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: the reference's exponent constant c (a = σ(Λ)^(c·r))
GATE_C = 8.0


def project_distribution(probs: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """h = Eᵀ p / ‖p‖₂: probs (…, V) over the embedding matrix (V, H) -> (…, H).

    A one-hot p gives that token's embedding row exactly; a flatter p gives a longer-than-convex
    blend (dividing by ‖p‖₂ ≤ 1, not by ‖p‖₁ = 1, as the reference does).
    """
    norm = probs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (probs / norm).to(embedding.dtype) @ embedding


def lambda_init(
    hidden: int, r_min: float, r_max: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Λ with σ(Λ)^c uniform in [r_min, r_max], i.e. a(r = 1) ∈ [r_min, r_max] (reference
    ``reset_lambda_parameters``): u ~ U[r_min, r_max], Λ = −log(u^(−1/c) − 1)."""
    u = torch.empty(hidden).uniform_(r_min, r_max, generator=generator)
    return -torch.log(u.pow(-1.0 / GATE_C) - 1.0)


class HybridInput(nn.Module):
    """The thinking-span input x̃ = a ⊙ ê + sqrt(1 − a²) ⊙ (i ⊙ h).

    ``mode="hrpo"``: learned gates r, i and Λ (above). ``mode="fixed"``: a = ``fixed_a`` everywhere
    and i = 1 (no parameters; the gate-less interpolation ablation).
    """

    def __init__(
        self,
        hidden: int,
        *,
        mode: str = "hrpo",
        r_min: float = 0.99,
        r_max: float = 0.999,
        fixed_a: float | None = None,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("hrpo", "fixed"):
            raise ValueError(f"HybridInput mode must be 'hrpo' or 'fixed', got {mode!r}")
        if not 0 < r_min <= r_max < 1:
            raise ValueError(f"need 0 < r_min <= r_max < 1, got r_min={r_min}, r_max={r_max}")
        self.mode = mode
        self.fixed_a = (r_min + r_max) / 2 if fixed_a is None else float(fixed_a)
        if not 0 < self.fixed_a <= 1:
            raise ValueError(f"fixed_a must be in (0, 1], got {self.fixed_a}")
        if mode == "hrpo":
            self.gate_r = nn.Linear(hidden, hidden)
            self.gate_i = nn.Linear(hidden, hidden)
            for linear in (self.gate_r, self.gate_i):
                with torch.no_grad():
                    linear.weight.normal_(0.0, init_std, generator=generator)
                    linear.bias.zero_()
            self.Lambda = nn.Parameter(lambda_init(hidden, r_min, r_max, generator))

    def gates(self, token_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, i), each shaped like ``token_embeds`` (…, H)."""
        if self.mode == "fixed":
            ones = torch.ones_like(token_embeds)
            return ones * self.fixed_a, ones
        r = torch.sigmoid(self.gate_r(token_embeds))
        i = torch.sigmoid(self.gate_i(token_embeds))
        a = torch.exp(-GATE_C * F.softplus(-self.Lambda) * r)
        return a, i

    def forward(self, token_embeds: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̃, a): the mixed input and the embedding share a, both (…, H)."""
        a, i = self.gates(token_embeds)
        mixed = a * token_embeds + torch.sqrt(1.0 - a * a + 1e-8) * (i * hidden.to(token_embeds.dtype))
        return mixed, a


def hidden_share(a: torch.Tensor) -> torch.Tensor:
    """sqrt(1 − a²): the coefficient of the hidden vector (the reference's ``hidden_ratio``)."""
    return torch.sqrt((1.0 - a * a).clamp_min(0.0))
