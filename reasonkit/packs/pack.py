"""PromptPack: one implementation of every RL-of-Thoughts call, rendered from a YAML data file.

A pack turns (problem, steps so far, call arguments) into a Prompt — raw text for ``format: text``
packs (the built-in model continues it), a list of chat messages for ``format: chat`` packs — and
turns model output back into data with parsers that never raise on arbitrary text. It also writes
the *targets* the arith teacher trains on (``format_*``; a full target is ``format_x(...) + pack.end``).

    >>> pack = load_pack("compact")
    >>> from reasonkit.types import Problem
    >>> p = Problem(id="a", question="3+4*5", answer="23", kind="arith")
    >>> pack.reason_step(p, ["4*5=20|3+20"])
    '<q>3+4*5;4*5=20|3+20<step>'
    >>> pack.parse_scores("3331213")
    (3, 3, 3, 1, 2, 1, 3)

Built-in packs: ``compact`` (control tokens, for the built-in model), ``compact2`` (compact with a
separator closing the summarize prompt; built-in v4 onwards), ``compact3`` (compact2 whose refine
writes each value least-significant digit first before the step) and ``natural`` (the paper's wording,
for instruction-tuned LLMs). A pack file may start from another with ``extends:`` (a built-in name or
a path relative to the file) and give only what differs. docs/prompt-packs.md documents the contract and the YAML format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from reasonkit.answers import extract_int
from reasonkit.packs.blocks import ASPECTS, OPTIONAL_CALLS
from reasonkit.packs.schema import PackError, deep_merge, fill, validate
from reasonkit.types import Problem, Prompt, SamplingParams

BUILTIN_PACKS: tuple[str, ...] = ("compact", "compact2", "compact3", "natural")
_PACK_DIR = Path(__file__).resolve().parent
_MAX_INDEX_DIGITS = 6


class PromptPack:
    """A prompt pack loaded from data (see :func:`load_pack`). Immutable after construction."""

    def __init__(self, data: Mapping[str, Any], source: str = "<dict>") -> None:
        self._data = validate(data, source)
        self.source = source
        d = self._data
        self.name: str = d["name"]
        self.description: str = d.get("description", "")
        self.format: str = d["format"]
        self.stop: tuple[str, ...] = tuple(d.get("stop", ()))
        self.control_tokens: tuple[str, ...] = tuple(d.get("control_tokens", ()))
        #: True: refine's output replaces the last step; False: it is appended (the paper's code).
        self.refine_replaces_last: bool = d.get("refine", "replace") == "replace"
        self.max_subtasks: int = d.get("max_subtasks", 4)
        self.end: str = d["targets"].get("end", "")
        p = d["parsers"]
        self._choice_res = [re.compile(x) for x in p["plan_choice"]]
        self._yes_re, self._no_re = (re.compile(x) for x in p["yes_no"])
        self._score_mode = p["scores"]["mode"]
        self._score_res = {
            a: re.compile(p["scores"].get("pattern", "").replace("{aspect}", re.escape(a))) for a in ASPECTS
        }

    def __repr__(self) -> str:
        return f"PromptPack(name={self.name!r}, format={self.format!r}, source={self.source!r})"

    def to_dict(self) -> dict[str, Any]:
        return deep_merge(self._data, {})

    def with_overrides(self, overrides: Mapping[str, Any]) -> PromptPack:
        """A new pack with ``overrides`` deep-merged in, e.g. per-kind direct/CoT templates:
        ``pack.with_overrides({"calls": {"cot": {"by_kind": {"math": {"user": "..."}}}}})``."""
        return PromptPack(deep_merge(self._data, overrides), source=f"{self.source} (with overrides)")

    # ------------------------------------------------------------ rendering

    @staticmethod
    def _per_kind(value: Any, kind: str) -> str:
        if isinstance(value, str):
            return value
        return value.get(kind, value["default"])

    def _list(self, name: str, items: Sequence[Mapping[str, object]]) -> str:
        spec = self._data.get("lists", {}).get(name, {})
        if not items:
            return spec.get("empty", "")
        body = spec.get("sep", "").join(fill(spec.get("item", ""), item) for item in items)
        return spec.get("head", "") + body + spec.get("tail", "")

    def question(self, problem: Problem) -> str:
        """The problem as this pack shows it (choices laid out for multiple-choice problems)."""
        choices = "\n".join(
            fill(self._data.get("choice_item", "({{letter}}) {{text}}"), {"letter": chr(65 + i), "text": c})
            for i, c in enumerate(problem.choices or ())
        )
        template = self._per_kind(self._data.get("problem", "{{question}}"), problem.kind)
        if problem.choices and "{{choices}}" not in template:
            raise ValueError(
                f"prompt pack {self.name!r} cannot show the options of multiple-choice problem {problem.id!r} "
                f"(its problem template for kind {problem.kind!r} has no {{{{choices}}}}), so a score would mean "
                "nothing: use a model that speaks the natural pack, or give the pack a template with {{choices}}"
            )
        return fill(template, {"question": problem.question, "choices": choices})

    def _render(self, call: str, problem: Problem, steps: Sequence[str], **extra: object) -> Prompt:
        if not isinstance(problem, Problem):
            raise TypeError(
                f"{call}: problem must be a reasonkit.types.Problem, got {type(problem).__name__}"
            )
        if isinstance(steps, str):
            raise TypeError(f"{call}: steps must be a list of step strings, not one string")
        spec = self._call_spec(call, problem.kind)
        items = [{"i": i, "step": s.strip()} for i, s in enumerate(steps, 1)]
        values: dict[str, object] = {
            "question": self.question(problem),
            "history": self._list("history", items),
            "solution": self._list("solution", items),
            "n_steps": len(steps),
            "next_step": len(steps) + 1,
            "answer_instruction": self._per_kind(self._data.get("answer_instruction", ""), problem.kind),
            **extra,
        }
        if self.format == "text":
            return fill(spec["prompt"], values)
        messages = [{"role": "system", "content": fill(spec["system"], values)}] if spec.get("system") else []
        return [*messages, {"role": "user", "content": fill(spec["user"], values)}]

    def _call_spec(self, call: str, kind: str | None) -> dict[str, Any]:
        calls = self._data["calls"]
        if call not in calls and call in OPTIONAL_CALLS:
            call = OPTIONAL_CALLS[call]
        if call not in calls:
            raise ValueError(f"unknown call {call!r}; calls: {sorted(calls)}")
        spec = {k: v for k, v in calls[call].items() if k != "by_kind"}
        if kind is not None:
            spec.update(calls[call].get("by_kind", {}).get(kind, {}))
        return spec

    def sampling(self, call: str, kind: str | None = None) -> SamplingParams:
        """Sampling hints for a call (greedy by default; the pack's stop strings)."""
        spec = self._call_spec(call, kind)
        return SamplingParams(
            max_new_tokens=spec.get("max_new_tokens", 256),
            temperature=float(spec.get("temperature", self._data.get("temperature", 0.0))),
            stop=tuple(spec.get("stop", self.stop)),
        )

    def direct(self, problem: Problem) -> Prompt:
        return self._render("direct", problem, ())

    def cot(self, problem: Problem) -> Prompt:
        return self._render("cot", problem, ())

    def reason_step(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("reason_step", problem, steps)

    def decompose(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("decompose", problem, steps)

    def _results(self, subtasks: Sequence[str], results: Sequence[str]) -> list[dict[str, object]]:
        return [
            {"i": i, "subtask": s.strip(), "result": r.strip(), "value": self.result_value(r)}
            for i, (s, r) in enumerate(zip(subtasks, results), 1)
        ]

    def solve_subtask(
        self, problem: Problem, steps: Sequence[str], subtasks: Sequence[str], results: Sequence[str], i: int
    ) -> Prompt:
        """Subtask ``i`` (0-based); ``results`` holds the raw outputs of subtasks ``0..i-1``."""
        if not 0 <= i < len(subtasks):
            raise ValueError(f"solve_subtask: i={i} is outside the {len(subtasks)} subtasks")
        if len(results) < i:
            raise ValueError(
                f"solve_subtask: subtask {i} needs the results of the {i} before it, got {len(results)}"
            )
        previous = self._list("previous_results", self._results(subtasks[:i], results[:i]))
        return self._render(
            "solve_subtask", problem, steps, subtask=subtasks[i].strip(), subtask_index=i + 1,
            previous_results=previous,
        )  # fmt: skip

    def summarize(
        self, problem: Problem, steps: Sequence[str], subtasks: Sequence[str], results: Sequence[str]
    ) -> Prompt:
        """The summary call; ``results[i]`` is the raw output of solving ``subtasks[i]``."""
        if len(results) != len(subtasks):
            raise ValueError(f"summarize: {len(subtasks)} subtasks but {len(results)} results")
        listed = self._list("subtask_results", self._results(subtasks, results))
        return self._render("summarize", problem, steps, subtask_results=listed)

    def debate_plans(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("debate_plans", problem, steps)

    def debate_compare(self, problem: Problem, steps: Sequence[str], plans: Sequence[str]) -> Prompt:
        listed = self._list("plans", [{"i": i, "plan": p.strip()} for i, p in enumerate(plans, 1)])
        return self._render("debate_compare", problem, steps, plans=listed)

    def debate_follow(
        self, problem: Problem, steps: Sequence[str], plans: Sequence[str], choice: int
    ) -> Prompt:
        if plans and not 0 <= choice < len(plans):
            raise ValueError(f"debate_follow: choice={choice} is outside the {len(plans)} plans")
        plan = plans[choice].strip() if plans else ""
        return self._render("debate_follow", problem, steps, plan=plan, plan_index=choice + 1)

    def refine(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("refine", problem, steps)

    def terminate(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("terminate", problem, steps)

    def answer(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        """The final answer of this state with no further work (falls back to ``terminate``)."""
        return self._render("answer", problem, steps)

    def final_check(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("final_check", problem, steps)

    def self_evaluate(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        return self._render("self_evaluate", problem, steps)

    # ------------------------------------------------------------ parsing (never raises on text)

    def _segment(self, text: str) -> str:
        """Text packs read only up to the first stop string (in case a backend did not trim it)."""
        if self.format == "text":
            for stop in self.stop:
                text = text.split(stop, 1)[0]
        return text

    def _items(self, name: str, text: str) -> list[str]:
        spec = self._data["parsers"][name]
        if "split" in spec:
            parts = self._segment(text).split(spec["split"])
        else:
            found = re.split(spec["marker"], text)
            parts = found[1:] if len(found) > 1 else found
        return [p.strip() for p in parts if p.strip()]

    def parse_subtasks(self, text: str) -> list[str]:
        """Subtasks listed in a decompose output (at most ``max_subtasks``; [] when none)."""
        return self._items("subtasks", text)[: self.max_subtasks]

    def parse_plans(self, text: str) -> list[str]:
        """Exactly three plans: the first three listed, padded by repeating the last ('' when none)."""
        plans = self._items("plans", text)[:3]
        return plans + [plans[-1] if plans else ""] * (3 - len(plans))

    def parse_plan_choice(self, text: str, n: int) -> int:
        """0-based index of the chosen plan among ``n``; 0 (the paper's "plan 1") when unparsable."""
        if n < 1:
            raise ValueError(f"parse_plan_choice needs n >= 1 plans, got {n}")
        segment = self._segment(text)
        for pattern in self._choice_res:
            m = pattern.search(segment)
            if m and m.group(1) and len(m.group(1)) <= _MAX_INDEX_DIGITS and m.group(1).isdigit():
                index = int(m.group(1)) - 1
                if 0 <= index < n:
                    return index
        return 0

    def parse_yes_no(self, text: str) -> bool:
        """True when a "yes" comes before any "no"; False otherwise (including no answer at all)."""
        segment = self._segment(text)
        yes, no = self._yes_re.search(segment), self._no_re.search(segment)
        return yes is not None and (no is None or yes.start() < no.start())

    def parse_scores(self, text: str) -> tuple[int, ...]:
        """Seven scores in ASPECTS order, each in {0,1,2,3}; anything unparsable scores 0."""
        if self._score_mode == "sequence":
            digits = [int(ch) for ch in re.findall(r"[0-9]", self._segment(text))[: len(ASPECTS)]]
        else:
            digits = []
            for aspect in ASPECTS:
                m = self._score_res[aspect].search(text)
                digits.append(
                    int(m.group(1))
                    if m and m.group(1) and m.group(1).isdigit() and len(m.group(1)) == 1
                    else 0
                )
        digits += [0] * (len(ASPECTS) - len(digits))
        return tuple(d if 0 <= d <= 3 else 0 for d in digits)

    def parse_refine(self, text: str) -> str:
        """The step a refine output arrives at: with ``parsers.refine.after``, the text after the
        marker's last occurrence (what comes before is scratch work); the whole text when the
        marker is missing."""
        marker = self._data["parsers"].get("refine", {}).get("after")
        if marker and marker in text:
            text = text.rsplit(marker, 1)[1]
        return text.strip()

    def result_value(self, text: str) -> str:
        """The value a subtask's output arrives at (its stated answer or last number), else the text."""
        segment = self._segment(text)
        return extract_int(segment) or segment.strip()

    # ------------------------------------------------------------ targets (what the teacher writes)

    def format_step(self, calcs: Sequence[tuple[str, int | str]], expr: str) -> str:
        t = self._data["targets"]["step"]
        if not calcs:
            return fill(t["no_calc"], {"expr": expr})
        joined = t.get("calc_sep", ",").join(fill(t["calc"], {"lhs": lhs, "value": v}) for lhs, v in calcs)
        return fill(t["text"], {"calcs": joined, "expr": expr})

    def format_refine(self, step: str, calcs: Sequence[tuple[str, int | str]] = ()) -> str:
        """Refine's target: ``targets.refine`` around the corrected ``step``; its ``{{scratch}}`` is
        ``targets.scratch.calc`` for each of the step's calculations (``{{reversed}}``: the value's
        sign, then its digits least significant first)."""
        t = self._data["targets"]
        spec = t.get("scratch", {})
        scratch = spec.get("sep", ",").join(
            fill(spec.get("calc", ""), {"lhs": lhs, "value": v, "reversed": _reversed_digits(v)})
            for lhs, v in calcs
        )
        return fill(t.get("refine", "{{step}}"), {"scratch": scratch, "step": step})

    def format_answer(self, answer: int | str, kind: str = "arith") -> str:
        return fill(self._per_kind(self._data["targets"].get("answer", "The answer is {{answer}}"), kind),
                    {"answer": answer})  # fmt: skip

    def format_cot(self, steps: Sequence[str], answer: int | str, kind: str = "arith") -> str:
        return self._data["targets"].get("cot_sep", "\n").join([*steps, self.format_answer(answer, kind)])

    def _format_list(self, name: str, field: str, items: Sequence[str]) -> str:
        spec = self._data["targets"].get(name, {})
        item = spec.get("item", "{{" + field + "}}")
        return spec.get("sep", "\n").join(fill(item, {"i": i, field: x}) for i, x in enumerate(items, 1))

    def format_subtasks(self, subtasks: Sequence[str]) -> str:
        return self._format_list("subtasks", "subtask", subtasks)

    def format_plans(self, plans: Sequence[str]) -> str:
        return self._format_list("plans", "plan", plans)

    def format_choice(self, index: int) -> str:
        """The compare output choosing plan ``index`` (0-based)."""
        return fill(self._data["targets"]["choice"], {"index": index + 1})

    def format_yes_no(self, answer: bool) -> str:
        return self._data["targets"]["yes_no"][0 if answer else 1]

    def format_scores(self, scores: Sequence[int]) -> str:
        if len(scores) != len(ASPECTS):
            raise ValueError(f"format_scores needs {len(ASPECTS)} scores, got {len(scores)}")
        return fill(self._data["targets"]["scores"], dict(zip(ASPECTS, scores)))


def _reversed_digits(value: int | str) -> str:
    """``-934`` -> ``"-439"``: the sign first, then the digits least significant first."""
    n = int(value)
    return ("-" if n < 0 else "") + str(abs(n))[::-1]


def available_packs() -> tuple[str, ...]:
    return BUILTIN_PACKS


@lru_cache(maxsize=8)
def _builtin(name: str) -> PromptPack:
    return _from_file(_PACK_DIR / f"{name}.yaml")


def _from_file(path: Path, seen: tuple[Path, ...] = ()) -> PromptPack:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PackError(f"prompt pack {path}: not valid YAML ({exc})") from None
    except OSError as exc:
        raise PackError(f"prompt pack {path}: cannot be read ({exc.strerror})") from None
    if isinstance(data, dict) and "extends" in data:
        data = _extended(path, data, seen)
    return PromptPack(data, source=str(path))


def _extended(path: Path, data: dict[str, Any], seen: tuple[Path, ...]) -> dict[str, Any]:
    """``data`` merged over the pack its ``extends:`` names (a built-in name, or a path relative to
    ``path``): mappings merge key by key, anything else replaces."""
    base_name = data.pop("extends")
    if not isinstance(base_name, str) or not base_name:
        raise PackError(f"prompt pack {path}: extends must name a pack (a built-in name or a YAML path)")
    base_path = _PACK_DIR / f"{base_name}.yaml" if base_name in BUILTIN_PACKS else path.parent / base_name
    if not base_path.is_file():
        raise PackError(
            f"prompt pack {path}: extends {base_name!r}, which is neither a built-in pack "
            f"({', '.join(BUILTIN_PACKS)}) nor a file next to it"
        )
    if base_path.resolve() in (*seen, path.resolve()):
        raise PackError(f"prompt pack {path}: extends itself through {base_name!r} (a cycle)")
    base = _from_file(base_path, (*seen, base_path.resolve()))
    return deep_merge(base.to_dict(), data)


def load_pack(
    name_or_path: str | Path | PromptPack, overrides: Mapping[str, Any] | None = None
) -> PromptPack:
    """A built-in pack by name ("compact", "natural") or a pack from a YAML file, optionally overridden."""
    pack: PromptPack
    if isinstance(name_or_path, PromptPack):
        pack = name_or_path
    elif str(name_or_path) in BUILTIN_PACKS:
        pack = _builtin(str(name_or_path))
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise PackError(
                f"no prompt pack {str(name_or_path)!r}: built-in packs are {', '.join(BUILTIN_PACKS)}; "
                f"otherwise give the path of a pack YAML file (see docs/prompt-packs.md)"
            )
        pack = _from_file(path)
    return pack.with_overrides(overrides) if overrides else pack
