"""Backend-driven workspace modules: an LLM step, a calculator, a verifier, a text Output.

The router of arXiv 2503.01906 chains modules through a shared workspace; here the same router
chains symbolic tools. Each module reads the workspace's text side (the question, the latest text,
the history), writes new text, and a :class:`TextEncoder` turns that text into the workspace vector
the controller reads. :class:`PatternEncoder` makes that vector an interpretable one-hot category
("expression", "number", ...), so a controller can be written by hand
(:func:`~reasonkit.workspaces.gating.reactive_controller`) or trained.

    >>> encoder = PatternEncoder([("number", r"-?\\d+"), ("expression", r"[\\d\\s()+*-]+")])
    >>> encoder.categories
    ('number', 'expression', 'other')
    >>> encoder.encode(["42", "6*7", "hello", ""]).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]

The calculator never runs ``eval``: it calls the arith task's safe AST evaluator
(:func:`reasonkit.tasks.arith.evaluate`).
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from reasonkit.backends.base import LanguageModel
from reasonkit.types import Cost, SamplingParams
from reasonkit.workspaces.router import WorkspaceModule
from reasonkit.workspaces.state import WorkspaceState

VERIFIED, REJECTED, ERROR = "VERIFIED: ", "REJECTED: ", "ERROR: "
TEMPLATE_FIELDS = frozenset({"question", "text", "history"})


@runtime_checkable
class TextEncoder(Protocol):
    """Text → workspace features: ``encode(texts)`` is (B, dim)."""

    dim: int

    def encode(self, texts: Sequence[str]) -> Tensor: ...


class PatternEncoder:
    """One-hot category of a text: the first named regex that matches it whole, else "other".

    A blank text encodes as all zeros, like the blank workspace every episode starts from, so the
    ``default`` module of a :func:`~reasonkit.workspaces.gating.reactive_controller` is the first
    step of an agent.
    """

    def __init__(self, patterns: Sequence[tuple[str, str]]) -> None:
        names = [name for name, _ in patterns]
        if len(set(names)) != len(names) or {"empty", "other"} & set(names):
            raise ValueError(f"pattern names must be unique and not 'empty'/'other', got {names}")
        try:
            self._patterns = [(name, re.compile(rx, re.DOTALL)) for name, rx in patterns]
        except re.error as exc:
            raise ValueError(f"bad regular expression in PatternEncoder: {exc}") from exc
        self.categories: tuple[str, ...] = (*names, "other")
        self.dim = len(self.categories)

    def index(self, category: str) -> int:
        if category not in self.categories:
            raise ValueError(f"unknown category {category!r}; categories: {self.categories}")
        return self.categories.index(category)

    def category(self, text: str) -> str:
        stripped = text.strip()
        if not stripped:
            return "empty"
        for name, pattern in self._patterns:
            if pattern.fullmatch(stripped):
                return name
        return "other"

    def encode(self, texts: Sequence[str]) -> Tensor:
        out = torch.zeros(len(texts), self.dim)  # (B, dim)
        for row, text in enumerate(texts):
            category = self.category(text)
            if category != "empty":
                out[row, self.index(category)] = 1.0
        return out


class HashedNgramEncoder:
    """Bag of hashed character n-grams, L2-normalised (B, dim): a generic input for learned controllers.

    Uses CRC32, not Python's salted ``hash``, so a text encodes the same in every process.
    """

    def __init__(self, dim: int = 256, n: int = 3) -> None:
        if dim < 1 or n < 1:
            raise ValueError(f"dim and n must be >= 1, got {dim} and {n}")
        self.dim, self.n = dim, n

    def encode(self, texts: Sequence[str]) -> Tensor:
        out = torch.zeros(len(texts), self.dim)  # (B, dim)
        for row, text in enumerate(texts):
            padded = f" {text} "
            for i in range(max(1, len(padded) - self.n + 1)):
                out[row, zlib.crc32(padded[i : i + self.n].encode()) % self.dim] += 1.0
        return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class TextModule(WorkspaceModule):
    """Base of text modules: writes texts into the history and their encoding into slot ``slot``."""

    uses_text = True

    def __init__(self, name: str, encoder: TextEncoder, slot: int = 0) -> None:
        super().__init__()
        if not isinstance(encoder, TextEncoder):
            raise TypeError(f"encoder must have .dim and .encode(texts), got {type(encoder).__name__}")
        self.name, self.encoder, self.slot = name, encoder, slot

    def texts_of(self, state: WorkspaceState) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(questions, latest texts) of the batch; the stimulus must be a list of strings."""
        questions = state.stimulus
        if not isinstance(questions, (list, tuple)) or not all(isinstance(q, str) for q in questions):
            raise ValueError(f"text module {self.name!r} needs the stimulus to be a list of question strings")
        latest = state.text if state.text is not None else ("",) * state.batch_size
        return tuple(questions), latest

    def write(self, state: WorkspaceState, texts: Sequence[str]) -> WorkspaceState:
        code = self.encoder.encode(texts).to(state.vector)  # (B, dim)
        if code.shape != (state.batch_size, state.vector.shape[-1]):
            raise ValueError(
                f"module {self.name!r}: encoder gives {tuple(code.shape)} but workspace slots are "
                f"{state.vector.shape[-1]} wide; build the router with width=encoder.dim"
            )
        vector = state.vector.clone()
        vector[:, self.slot] = code
        return state.with_text(self.name, texts, vector)


def render_history(history: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{module}: {text}" for module, text in history)


class LLMStepModule(TextModule):
    """One LLM call per item: ``template`` filled with {question}, {text} (latest), {history}.

    The first completion's text, stripped, is written into the workspace. ``cost`` accumulates the
    backend calls and tokens this module spent.
    """

    def __init__(
        self,
        backend: LanguageModel,
        template: str,
        encoder: TextEncoder,
        *,
        params: SamplingParams | None = None,
        name: str = "llm",
        slot: int = 0,
    ) -> None:
        super().__init__(name, encoder, slot)
        if not callable(getattr(backend, "generate", None)):
            raise TypeError(f"backend must implement LanguageModel.generate, got {type(backend).__name__}")
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        if not fields <= TEMPLATE_FIELDS:
            raise ValueError(
                f"template fields {sorted(fields - TEMPLATE_FIELDS)} are unknown; use {sorted(TEMPLATE_FIELDS)}"
            )
        self.backend, self.template = backend, template
        self.params = params or SamplingParams(max_new_tokens=64)
        self.cost = Cost()

    def prompts(self, state: WorkspaceState) -> list[str]:
        questions, latest = self.texts_of(state)
        histories = state.history if state.history is not None else ((),) * state.batch_size
        return [
            self.template.format(question=q, text=t, history=render_history(h))
            for q, t, h in zip(questions, latest, histories)
        ]

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        prompts = self.prompts(state)
        completions = self.backend.generate(prompts, self.params)
        if len(completions) != len(prompts) or any(not c for c in completions):
            raise RuntimeError(
                f"backend {getattr(self.backend, 'name', '?')!r} returned {len(completions)} completion lists "
                f"for {len(prompts)} prompts"
            )
        for completion in completions:
            self.cost = self.cost + Cost.of(completion)
        return self.write(state, [c[0].text.strip() for c in completions])


def first_line(text: str) -> str:
    """The expression in a text: its first line, without a trailing '='."""
    return text.strip().splitlines()[0].strip().rstrip("=").strip() if text.strip() else ""


class CalculatorModule(TextModule):
    """Evaluates the latest text (the question while the workspace is empty) with the safe evaluator.

    Writes the integer result, or ``"ERROR: <why>"`` when the text is not an allowed expression.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        extract: Callable[[str], str] = first_line,
        name: str = "calculator",
        slot: int = 0,
    ) -> None:
        super().__init__(name, encoder, slot)
        self.extract = extract

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        from reasonkit.tasks.arith import ArithExpressionError, evaluate

        questions, latest = self.texts_of(state)
        results = []
        for question, text in zip(questions, latest):
            expression = self.extract(text if text.strip() else question)
            try:
                results.append(str(evaluate(expression)))
            except ArithExpressionError as exc:
                results.append(f"{ERROR}{exc}")
        return self.write(state, results)


class VerifierModule(TextModule):
    """Judges the latest text with ``check(question, text) -> bool``: writes "VERIFIED: t" or "REJECTED: t"."""

    def __init__(
        self,
        encoder: TextEncoder,
        check: Callable[[str, str], bool],
        *,
        name: str = "verifier",
        slot: int = 0,
    ) -> None:
        super().__init__(name, encoder, slot)
        self.check = check

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        questions, latest = self.texts_of(state)
        verdicts = [f"{VERIFIED if self.check(q, t) else REJECTED}{t}" for q, t in zip(questions, latest)]
        return self.write(state, verdicts)


class TextOutput(TextModule):
    """The Output module of a text router: halts; the answer is the latest text (verified prefix removed)."""

    halts = True

    def __init__(self, encoder: TextEncoder, *, name: str = "output", slot: int = 0) -> None:
        super().__init__(name, encoder, slot)

    def forward(self, state: WorkspaceState) -> WorkspaceState:
        return state

    def readout(self, state: WorkspaceState) -> list[str]:
        _, latest = self.texts_of(state)
        return [t.removeprefix(VERIFIED) for t in latest]
