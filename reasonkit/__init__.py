"""reasonkit: orchestrate LLM reasoning at inference time and train the small controllers that do it.

Heavy parts (torch, transformers) are imported lazily: ``import reasonkit`` is cheap, and the names
below resolve on first use.
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Problem": "reasonkit.types",
    "SamplingParams": "reasonkit.types",
    "Completion": "reasonkit.types",
    "Step": "reasonkit.types",
    "Trace": "reasonkit.types",
    "Cost": "reasonkit.types",
    "LanguageModel": "reasonkit.backends.base",
    "BackendError": "reasonkit.backends.base",
    "CapabilityError": "reasonkit.backends.base",
    "load_backend": "reasonkit.backends.loading",
    "HFBackend": "reasonkit.backends.hf",
    "OpenAIBackend": "reasonkit.backends.openai",
    "CachedBackend": "reasonkit.backends.cached",
    "start_server": "reasonkit.backends.server",
    "load_pack": "reasonkit.packs",
    "PromptPack": "reasonkit.packs",
    "Controller": "reasonkit.controller",
    "RunResult": "reasonkit.controller",
    "solve": "reasonkit.controller",
    "format_trace": "reasonkit.controller",
    "Budget": "reasonkit.kit.base",
    "Direct": "reasonkit.kit.baselines",
    "CoT": "reasonkit.kit.baselines",
    "SelfConsistency": "reasonkit.kit.baselines",
    "make_strategy": "reasonkit.strategies",
    "is_correct": "reasonkit.answers",
    "run_eval": "reasonkit.evals.runner",
    "EvalConfig": "reasonkit.evals.runner",
    "GatedLMConfig": "reasonkit.models",
    "GatedLMModel": "reasonkit.models",
    "GatedLMForCausalLM": "reasonkit.models",
    "GatedLMCache": "reasonkit.models",
}

__all__ = ["__version__", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
