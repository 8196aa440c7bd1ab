"""Benchmark-family prompts (boxed-answer math, integer answer, GPQA letter), kept as data.

The templates live in ``evals/prompts.yaml`` as overrides of the natural prompt pack, so there is
one rendering path: the pack's ``direct`` / ``cot`` calls, specialised per problem kind. Users
change wording without code, from a YAML file in the same layout (deep-merged over the defaults):

    calls:
      cot:
        by_kind:
          math: {user: "Please reason step by step, and put your final answer within \\boxed{}.\\n\\n{{question}}"}

    >>> from reasonkit.evals.prompts import prompt_for
    >>> from reasonkit.types import Problem
    >>> prompt_for(Problem(id="p", question="What is 1+1?", answer="2", kind="int"), "cot")[0]["content"][:40]
    'Solve the following math problem efficie'

The built-in model speaks only its compact pack; benchmark prompts are for instruction-tuned LLMs
(backends whose pack is ``natural``, the default for HF models and servers).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from reasonkit.packs.pack import PromptPack, load_pack
from reasonkit.packs.schema import deep_merge
from reasonkit.types import Problem, Prompt

DEFAULT_PROMPTS = Path(__file__).resolve().with_name("prompts.yaml")
STYLES: tuple[str, ...] = ("direct", "cot")


class PromptsError(ValueError):
    """A prompts file is missing or malformed; the message names the file and the fix."""


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PromptsError(f"prompts file {path} does not exist; pass an existing YAML file to --prompts")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromptsError(f"prompts file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PromptsError(
            f"prompts file {path} must hold a mapping (calls: cot: by_kind: math: user: ...), "
            f"got {type(data).__name__}"
        )
    return data


def load_prompts(prompts: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default benchmark prompts with ``prompts`` (a YAML path or a mapping) merged over them."""
    merged = _read_yaml(DEFAULT_PROMPTS)
    if prompts is None:
        return merged
    override = dict(prompts) if isinstance(prompts, Mapping) else _read_yaml(Path(prompts))
    return deep_merge(merged, override)


@lru_cache(maxsize=16)
def _cached_pack(prompts: str | None, base: str) -> PromptPack:
    pack = load_pack(base)
    source = f"{pack.source} + {DEFAULT_PROMPTS.name}" + (f" + {prompts}" if prompts else "")
    return PromptPack(deep_merge(pack.to_dict(), load_prompts(prompts)), source=source)


def benchmark_pack(
    prompts: str | Path | Mapping[str, Any] | None = None, base: str = "natural"
) -> PromptPack:
    """The ``base`` pack (a chat pack) with the benchmark-family direct/CoT prompts applied."""
    if isinstance(prompts, Mapping):
        pack = load_pack(base)
        return PromptPack(
            deep_merge(pack.to_dict(), load_prompts(prompts)), source=f"{pack.source} + overrides"
        )
    return _cached_pack(str(prompts) if prompts is not None else None, base)


def prompt_for(
    problem: Problem, style: str = "cot", prompts: str | Path | Mapping[str, Any] | None = None
) -> Prompt:
    """The prompt a benchmark problem gets: ``style`` "cot" (reason, then answer) or "direct"."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; use one of {STYLES}")
    pack = benchmark_pack(prompts)
    return pack.cot(problem) if style == "cot" else pack.direct(problem)
