"""Core types: what every layer of reasonkit passes around.

Plain frozen dataclasses with validation and JSON round trips, nothing else. Everything a run
produces is a :class:`Trace`; a trace serialises to one JSON line (``Trace.to_json``) and back
(``Trace.from_json``), which is what ``records.jsonl`` files in run directories hold.

    >>> p = Problem(id="a1", question="1+2*3", answer="7", kind="arith")
    >>> t = Trace(problem_id=p.id, steps=(), answer="7", correct=True, cost=Cost(calls=1))
    >>> Trace.from_json(t.to_json()) == t
    True
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ProblemKind = Literal["math", "int", "choice", "arith"]
PROBLEM_KINDS: tuple[str, ...] = ("math", "int", "choice", "arith")

#: A chat message as OpenAI-compatible servers and HF chat templates take it.
Message = Mapping[str, str]
#: A prompt is raw text (completion mode) or a list of chat messages (chat mode).
Prompt = str | Sequence[Message]


def _frozen_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value) if value else {}


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer.

    kind: "math" (LaTeX answer, graded with Math-Verify), "int" (integer answer, e.g. AIME/GSM8K),
    "choice" (a letter among ``choices``), "arith" (the built-in integer arithmetic task).
    """

    id: str
    question: str
    answer: str
    kind: str = "math"
    choices: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Problem.id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.question, str):
            raise ValueError(
                f"Problem {self.id}: question must be a string, got {type(self.question).__name__}"
            )
        if not isinstance(self.answer, str):
            raise ValueError(
                f"Problem {self.id}: answer must be a string (convert numbers with str()), "
                f"got {type(self.answer).__name__}"
            )
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"Problem {self.id}: kind must be one of {PROBLEM_KINDS}, got {self.kind!r}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"Problem {self.id}: kind 'choice' needs a non-empty choices tuple")
        object.__setattr__(self, "meta", _frozen_dict(self.meta))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "kind": self.kind,
            "choices": list(self.choices) if self.choices is not None else None,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        choices = data.get("choices")
        return cls(
            id=str(data["id"]),
            question=data["question"],
            answer=str(data["answer"]),
            kind=data.get("kind", "math"),
            choices=tuple(choices) if choices is not None else None,
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy; ``seed`` makes sampling reproducible.

    ``stop`` strings end a completion; the stop string itself is trimmed from the text.
    ``top_k == 0`` disables top-k filtering. ``presence_penalty`` / ``frequency_penalty`` are
    OpenAI's (-2..2; counts over the generated tokens, :class:`reasonkit.models.sampling.OpenAIPenalties`),
    honoured by local transformers models and passed on by OpenAI-compatible clients.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -2 <= value <= 2:
                raise ValueError(f"SamplingParams.{name} must be a number in [-2, 2], got {value!r}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise ValueError(
                f"SamplingParams.temperature must be a finite number >= 0, got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be >= 0 (0 disables it), got {self.top_k}")
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"SamplingParams.stop must hold non-empty strings, got {self.stop!r}")

    @property
    def deterministic(self) -> bool:
        """True when the same request always yields the same completions (greedy or seeded)."""
        return self.temperature == 0 or self.seed is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "n": self.n,
            "stop": list(self.stop),
            "seed": self.seed,
            # only when set, so keys (CachedBackend) of requests without penalties stay as they were
            **({"presence_penalty": self.presence_penalty} if self.presence_penalty else {}),
            **({"frequency_penalty": self.frequency_penalty} if self.frequency_penalty else {}),
        }

    @property
    def penalized(self) -> bool:
        """Whether a presence or frequency penalty is set."""
        return bool(self.presence_penalty or self.frequency_penalty)


@dataclass(frozen=True)
class Completion:
    """One generated continuation. ``finish_reason`` is "stop" (EOS or a stop string) or "length"."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str = "stop"
    logprobs: tuple[float, ...] | None = None
    #: what the backend measured beyond the text (e.g. Think-at-Hard's per-token depths); strategies
    #: copy it into their Step's meta
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    #: the generated token ids behind ``text`` (EOS included when generation ended on it), when the
    #: backend knows them (local models); ``reasonkit serve`` reports log-probs of exactly these.
    #: Not part of equality, not cached.
    token_ids: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.logprobs is not None:
            object.__setattr__(self, "logprobs", tuple(self.logprobs))
        if self.token_ids is not None:
            object.__setattr__(self, "token_ids", tuple(self.token_ids))
        object.__setattr__(self, "meta", _frozen_dict(self.meta))


@dataclass(frozen=True)
class Cost:
    """What something cost: backend calls (one per prompt sent), prompt and generated tokens, seconds."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            calls=self.calls + other.calls,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            seconds=self.seconds + other.seconds,
        )

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @classmethod
    def of(cls, completions: Sequence[Completion], seconds: float = 0.0) -> Cost:
        """The cost of one prompt's completions: the prompt is counted once, every sample's output."""
        if not completions:
            return cls(seconds=seconds)
        return cls(
            calls=1,
            tokens_in=completions[0].tokens_in,
            tokens_out=sum(c.tokens_out for c in completions),
            seconds=seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "seconds": round(self.seconds, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        return cls(
            calls=int(data.get("calls", 0)),
            tokens_in=int(data.get("tokens_in", 0)),
            tokens_out=int(data.get("tokens_out", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class Step:
    """One block of reasoning: which block ran, the prompt it sent (as text), what came back, its cost."""

    block: str
    prompt: str
    output: str
    cost: Cost = field(default_factory=Cost)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", _frozen_dict(self.meta))

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "prompt": self.prompt,
            "output": self.output,
            "cost": self.cost.to_dict(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            block=data["block"],
            prompt=data.get("prompt", ""),
            output=data.get("output", ""),
            cost=Cost.from_dict(data.get("cost") or {}),
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True)
class Trace:
    """Everything one strategy did on one problem. ``correct`` is None when the gold answer is unknown."""

    problem_id: str
    steps: tuple[Step, ...]
    answer: str | None
    correct: bool | None
    cost: Cost = field(default_factory=Cost)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "meta", _frozen_dict(self.meta))

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "answer": self.answer,
            "correct": self.correct,
            "cost": self.cost.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trace:
        return cls(
            problem_id=str(data["problem_id"]),
            steps=tuple(Step.from_dict(s) for s in data.get("steps", ())),
            answer=data.get("answer"),
            correct=data.get("correct"),
            cost=Cost.from_dict(data.get("cost") or {}),
            meta=dict(data.get("meta") or {}),
        )

    def redacted(self) -> Trace:
        """This trace without the problem's text: every step's prompt, output and sampled texts become
        ``sha256:`` digests (equal texts, equal digests); ids, answers, verdicts, costs stay. A run
        directory of an encrypted benchmark (GPQA) stores traces so, unless asked to keep the text."""
        steps = []
        for step in self.steps:
            meta = dict(step.meta)
            if isinstance(meta.get("samples"), list):
                meta["samples"] = [text_digest(str(t)) for t in meta["samples"]]
            steps.append(
                replace(step, prompt=text_digest(step.prompt), output=text_digest(step.output), meta=meta)
            )
        return replace(self, steps=tuple(steps), meta={**self.meta, "redacted": True})

    def to_json(self) -> str:
        """One line of JSON (no newlines inside), suitable for a JSONL record."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Trace:
        return cls.from_dict(json.loads(line))


def text_digest(text: str) -> str:
    """``sha256:`` + the first 16 hex digits of the text's SHA-256: shows two texts were equal, not what they said."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def prompt_text(prompt: Prompt) -> str:
    """A prompt as one string, for traces and logs (chat messages rendered as ``role: content`` lines)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
