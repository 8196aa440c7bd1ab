"""The LanguageModel protocol every backend implements, and its optional capabilities.

A backend turns a batch of prompts into completions: ``generate(prompts, params)`` returns one list
of ``params.n`` completions per prompt. Prompts are raw strings (completion mode) or lists of chat
messages (chat mode, rendered with the model's chat template or sent to ``/v1/chat/completions``).

White-box methods (RLoT's PRM rewards, CoLa, TaH, HRPO) need more than text: they check a declared
capability with :func:`require_capability`, which fails with one clear error on black-box backends
such as an OpenAI-compatible server.

Capabilities:
  - ``"loglikelihood"``: ``loglikelihood(prefix, continuations) -> list[float]`` (sum of token
    log-probabilities of each continuation given the prefix).
  - ``"hidden_states"``: ``model`` and ``tokenizer`` attributes expose a transformers model that
    returns hidden states.
  - ``"layers"``: the model's decoder layers are an indexable ``nn.ModuleList`` (layer surgery).
  - ``"chat"``: chat-message prompts are supported.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from reasonkit.types import Completion, Prompt, SamplingParams

CAPABILITIES: tuple[str, ...] = ("loglikelihood", "hidden_states", "layers", "chat")


class BackendError(RuntimeError):
    """A backend could not do what was asked (bad model, unreachable server, malformed reply)."""


class CapabilityError(BackendError):
    """A method needs a capability this backend does not declare."""


@runtime_checkable
class LanguageModel(Protocol):
    """What every backend provides. ``capabilities`` is a subset of :data:`CAPABILITIES`."""

    name: str
    capabilities: frozenset[str]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """One list of ``params.n`` completions per prompt, in prompt order."""
        ...


def declared_kinds(backend: Any) -> tuple[str, ...] | None:
    """The problem kinds a backend's model was trained for (a model card's ``"kinds"``), or None: any."""
    kinds = getattr(backend, "kinds", None)
    return tuple(kinds) if kinds else None


def warn_outside_training(backend: Any, kinds: Iterable[str], what: str, stacklevel: int = 3) -> bool:
    """Warn once (returns True) when ``kinds`` holds problem kinds ``backend``'s model was never trained
    for, e.g. the built-in arith model pointed at MATH-500; a general-purpose model declares none."""
    known = declared_kinds(backend)
    other = sorted(set(kinds) - set(known)) if known else []
    if not other:
        return False
    warnings.warn(
        f"{backend.name!r} was trained only on the {'/'.join(known or ())} task; {what} has problems of "
        f"kind {', '.join(other)}, which it has never seen, so expect near-zero accuracy. For these, "
        "point --model at an instruction-tuned LLM (an HF id, a local directory or a server URL)",
        UserWarning,
        stacklevel=stacklevel,
    )
    return True


def require_capability(backend: LanguageModel, capability: str, needed_by: str) -> None:
    """Raise :class:`CapabilityError` naming the method and the fix when ``backend`` lacks ``capability``."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {CAPABILITIES}")
    if capability not in getattr(backend, "capabilities", frozenset()):
        raise CapabilityError(
            f"{needed_by} needs the '{capability}' capability, which backend {backend.name!r} "
            f"({type(backend).__name__}) does not provide. Use a white-box backend instead: an HF id or "
            f"local path (HFBackend) or 'builtin'."
        )
