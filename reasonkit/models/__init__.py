"""Model families that run on reasonkit's kernels (GatedLM) and the built-in checkpoints.

``import reasonkit.models`` registers GatedLM (``model_type = "reasonkit_gated_lm"``) with
transformers' ``AutoConfig`` / ``AutoModel`` / ``AutoModelForCausalLM``; see docs/models.md.
"""

from reasonkit.models.gated_lm import (
    GatedLMCache,
    GatedLMConfig,
    GatedLMForCausalLM,
    GatedLMModel,
)

__all__ = ["GatedLMCache", "GatedLMConfig", "GatedLMForCausalLM", "GatedLMModel"]
