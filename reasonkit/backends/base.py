"""The LanguageModel protocol every backend implements, and its optional capabilities.

A backend turns a batch of prompts into completions: ``generate(prompts, params)`` returns one list
of ``params.n`` completions per prompt. Prompts are raw strings (completion mode) or lists of chat
messages (chat mode, rendered with the model's chat template or sent to ``/v1/chat/completions``).

White-box methods (RLoT's PRM rewards, CoLa, TaH, HRPO) need the model itself: they call
:func:`require_whitebox`, which returns the backend's typed handle
(:class:`~reasonkit.models.whitebox.WhiteBoxLM`: embeddings, layer paths, per-occurrence and
per-depth cache slots, the LM head) or fails with one clear error on a black-box backend such as an
OpenAI-compatible server.

Capabilities (``backend.capabilities``):
  - ``"loglikelihood"``: ``loglikelihood(prefix, continuations) -> list[float]`` (sum of token
    log-probabilities of each continuation given the prefix).
  - ``"whitebox"``: ``backend.whitebox`` is a :class:`~reasonkit.models.whitebox.WhiteBoxLM`.
  - ``"chat"``: chat-message prompts are supported.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from reasonkit.types import Completion, Prompt, SamplingParams

if TYPE_CHECKING:
    from reasonkit.models.whitebox.handle import WhiteBoxLM

CAPABILITIES: tuple[str, ...] = ("loglikelihood", "whitebox", "chat")


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


def require_whitebox(backend: Any, needed_by: str) -> WhiteBoxLM:
    """The white-box handle of ``backend`` (through wrappers such as CachedBackend), or a
    :class:`CapabilityError` naming ``needed_by`` and what to use instead."""
    if "whitebox" not in getattr(backend, "capabilities", frozenset()):
        reason = (
            "it runs no local model"
            if not hasattr(backend, "whitebox")
            else "its model family has no white-box adapter (supported: GatedLM and Llama, Qwen2, Qwen3, Mistral)"
        )
        raise CapabilityError(
            f"{needed_by} needs the model itself, and backend {backend.name!r} ({type(backend).__name__}) "
            f"cannot give it: {reason}. Use a local model instead: 'builtin', an HF id or a local directory"
        )
    handle: WhiteBoxLM = backend.whitebox
    return handle


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
