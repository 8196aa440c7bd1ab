"""HRPO: hybrid latent reasoning trained by reinforcement learning (arXiv 2505.18454), on stock libraries.

While the model is thinking, each next input mixes the sampled token's embedding with the projection
of the sampling distribution onto the embedding matrix through learned gates; a group-relative
policy gradient trains LoRA adapters and the gates. docs/hrpo.md has the design.

    reasonkit train-hrpo --out runs/hrpo                  # the built-in model on arith
    reasonkit train-hrpo --out runs/grpo --mode grpo      # the control
    reasonkit eval --bench arith --model hrpo:runs/hrpo   # a trained run is a backend

Modules: ``gate`` (the hybrid input), ``delimiter`` (where thinking ends), ``rollout`` (decode hooks,
batched group rollouts), ``objective`` (advantages, KL₃, the loss), ``policy`` (LoRA model + gates,
the loss and reference forwards), ``build``, ``checkpoint``, ``problems`` (data and reward), ``step``
(one optimizer step), ``train`` (the command), ``evaluate``, ``curves``, ``backend`` (``hrpo:OUT``).
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "HybridInput": "reasonkit.hrpo.gate",
    "project_distribution": "reasonkit.hrpo.gate",
    "DelimiterDetector": "reasonkit.hrpo.delimiter",
    "HybridHooks": "reasonkit.hrpo.rollout",
    "Rollout": "reasonkit.hrpo.rollout",
    "Policy": "reasonkit.hrpo.policy",
    "HRPOConfig": "reasonkit.hrpo.config",
    "train_hrpo": "reasonkit.hrpo.train",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
