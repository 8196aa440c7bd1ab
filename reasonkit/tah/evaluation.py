"""Teacher-forced measurements of a Think-at-Hard model on gold text (validation, and the study's
decider-versus-oracle and depth-by-difficulty tables).

One function, :func:`teacher_forced`, runs a model over encoded pairs and sums, per routing:

- ``tokens``, ``correct`` (final accumulated logits' argmax == gold), ``rows_exact`` (every target
  token right), ``loss_sum`` (cross-entropy of the final logits);
- ``iterated`` (target positions that took a second pass);
- by difficulty, where "wrong" means the *first pass* of this model mispredicts the gold token:
  ``first_wrong``, ``iterated_when_wrong``, ``iterated_when_right``, ``fixed`` (first pass wrong,
  final right), ``broken`` (first pass right, final wrong — the paper's "latent overthinking");
- against the oracle labels: ``oracle_hard``, ``agree`` and ``true_positive`` counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from reasonkit.tah.data import IGNORE, TextBatch, oracle_depths
from reasonkit.tah.model import TaHModel
from reasonkit.tah.passes import dense_logits, token_depths


@torch.no_grad()
def teacher_forced(
    model: TaHModel, batches: Sequence[TextBatch], reference: Any, route: str | None = None
) -> dict[str, float]:
    """Sums over ``batches`` (right-padded) under ``route`` (default the model's); see the module doc."""
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    try:
        for batch in batches:
            batch = batch.to(model.lm.device)
            oracle = oracle_depths(reference, batch, max(2, model.config.max_depth))
            eligible = model.eligible(batch.targets, batch.attention_mask)
            passes = model.run(batch.input_ids, None, eligible, route, oracle)
            B, T = batch.input_ids.shape
            final = dense_logits(passes, B, T).float()
            depth = token_depths(passes, B, T)
            scored = batch.targets != IGNORE
            gold = batch.targets.clamp(min=0)
            right = (final.argmax(-1) == gold) & scored
            first_right = (passes[0].logits.argmax(-1) == gold) & scored
            went = (depth > 1) & scored
            hard = (oracle > 1) & scored
            _add(
                totals,
                tokens=int(scored.sum()),
                correct=int(right.sum()),
                rows=B,
                rows_exact=int((right | ~scored).all(1).sum()),
                loss_sum=float(F.cross_entropy(final[scored], gold[scored], reduction="sum")),
                iterated=int(went.sum()),
                first_wrong=int((scored & ~first_right).sum()),
                iterated_when_wrong=int((went & ~first_right).sum()),
                iterated_when_right=int((went & first_right).sum()),
                fixed=int((scored & ~first_right & right).sum()),
                broken=int((first_right & ~right).sum()),
                oracle_hard=int(hard.sum()),
                agree=int((went == hard)[scored].sum()),
                true_positive=int((went & hard).sum()),
            )
    finally:
        model.train(was_training)
    return totals


def _add(totals: dict[str, float], **counts: float) -> None:
    for key, value in counts.items():
        totals[key] = totals.get(key, 0) + value


def summarize(t: dict[str, float]) -> dict[str, float | None]:
    """Rates from :func:`teacher_forced`'s sums (None where a denominator is zero)."""

    def rate(a: str, b: str) -> float | None:
        return t.get(a, 0) / t[b] if t.get(b) else None

    right = t.get("tokens", 0) - t.get("first_wrong", 0)
    return {
        "loss": rate("loss_sum", "tokens"),
        "token_acc": rate("correct", "tokens"),
        "exact": rate("rows_exact", "rows"),
        "iterated_share": rate("iterated", "tokens"),
        "first_pass_error": rate("first_wrong", "tokens"),
        "iterate_if_wrong": rate("iterated_when_wrong", "first_wrong"),
        "iterate_if_right": t.get("iterated_when_right", 0) / right if right else None,
        "fixed_share_of_wrong": rate("fixed", "first_wrong"),
        "broken_share_of_right": t.get("broken", 0) / right if right else None,
        "oracle_share": rate("oracle_hard", "tokens"),
        "decider_agreement": rate("agree", "tokens"),
        "decider_recall": rate("true_positive", "oracle_hard"),
        "decider_precision": rate("true_positive", "iterated"),
    }
