"""GatedLM: a hybrid GLA / gated-attention / sLSTM decoder on reasonkit's kernels, registered with transformers.

Importing this package registers ``model_type = "reasonkit_gated_lm"`` with ``AutoConfig``,
``AutoModel`` and ``AutoModelForCausalLM`` (idempotently), so a saved checkpoint loads with
``AutoModelForCausalLM.from_pretrained(path)`` after ``import reasonkit.models``.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from reasonkit.models.gated_lm.cache import GatedLMCache
from reasonkit.models.gated_lm.configuration import LAYER_TYPES, MODEL_TYPE, GatedLMConfig
from reasonkit.models.gated_lm.modeling import (
    GatedLMDecoderLayer,
    GatedLMForCausalLM,
    GatedLMModel,
    GatedLMPreTrainedModel,
)


def register() -> None:
    """Register GatedLM with the transformers Auto classes; safe to call any number of times."""
    # exist_ok: re-registering the same classes (a reload, a second import path) is not an error
    AutoConfig.register(MODEL_TYPE, GatedLMConfig, exist_ok=True)
    AutoModel.register(GatedLMConfig, GatedLMModel, exist_ok=True)
    AutoModelForCausalLM.register(GatedLMConfig, GatedLMForCausalLM, exist_ok=True)


register()

__all__ = [
    "LAYER_TYPES",
    "MODEL_TYPE",
    "GatedLMCache",
    "GatedLMConfig",
    "GatedLMDecoderLayer",
    "GatedLMForCausalLM",
    "GatedLMModel",
    "GatedLMPreTrainedModel",
    "register",
]
