"""What a prompt-pack YAML file may contain, its validation, and the ``{{field}}`` template filler.

Templates use ``{{name}}`` placeholders (double braces, so LaTeX such as ``\\boxed{}`` needs no
escaping). Values are inserted once and never re-scanned, so a model's output that happens to
contain ``{{question}}`` stays literal. Every placeholder is checked at load time against the fields
its place provides; a typo fails with the file, the place and the fields that exist.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from reasonkit.packs.blocks import ASPECTS, CALLS, OPTIONAL_CALLS

KINDS: tuple[str, ...] = ("arith", "int", "math", "choice")
_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PackError(ValueError):
    """A prompt pack is malformed; the message names the file, the place and the fix."""


def fill(template: str, values: Mapping[str, object]) -> str:
    """Replace each ``{{name}}`` with ``str(values[name])`` (one pass, values are not re-scanned)."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]), template)


def fields_of(template: str) -> set[str]:
    return set(_FIELD.findall(template))


# Fields every call prompt may use, and the extras of particular calls.
COMMON_FIELDS = {"question", "history", "solution", "n_steps", "next_step", "answer_instruction"}
CALL_FIELDS: dict[str, set[str]] = {name: set(COMMON_FIELDS) for name in CALLS}
CALL_FIELDS["solve_subtask"] |= {"subtask", "subtask_index", "previous_results"}
CALL_FIELDS["summarize"] |= {"subtask_results"}
CALL_FIELDS["debate_compare"] |= {"plans"}
CALL_FIELDS["debate_follow"] |= {"plan", "plan_index"}

# Lists rendered inside prompts: {head, item, sep, tail, empty}; the fields of their items.
LIST_FIELDS: dict[str, set[str]] = {
    "history": {"i", "step"},
    "solution": {"i", "step"},
    "subtask_results": {"i", "subtask", "result", "value"},
    "previous_results": {"i", "subtask", "result", "value"},
    "plans": {"i", "plan"},
}
TARGET_FIELDS: dict[str, set[str]] = {
    "step.calc": {"lhs", "value"},
    "step.text": {"calcs", "expr"},
    "step.no_calc": {"expr"},
    "answer": {"answer"},
    "subtasks.item": {"i", "subtask"},
    "plans.item": {"i", "plan"},
    "choice": {"index"},
    "scores": set(ASPECTS),
    "refine": {"scratch", "step"},
    "scratch.calc": {"lhs", "value", "reversed"},
}
TARGET_KEYS = {"end", "step", "cot_sep", "answer", "subtasks", "plans", "choice", "yes_no", "scores", "refine",
               "scratch"}  # fmt: skip
CALL_KEYS = {"prompt", "system", "user", "max_new_tokens", "stop", "temperature", "by_kind"}
TOP_KEYS = {
    "name",
    "description",
    "format",
    "stop",
    "control_tokens",
    "refine",
    "max_subtasks",
    "temperature",
    "problem",
    "choice_item",
    "answer_instruction",
    "lists",
    "calls",
    "targets",
    "parsers",
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in (mappings merge key by key, anything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> PackError:
        return PackError(f"prompt pack {self.source}: {where}: {message}")

    def text(self, value: Any, where: str, allowed: set[str]) -> None:
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, got {type(value).__name__}")
        unknown = fields_of(value) - allowed
        if unknown:
            raise self.fail(
                where, f"unknown placeholder(s) {sorted(unknown)}; this place provides {sorted(allowed)}"
            )

    def per_kind(self, value: Any, where: str, allowed: set[str]) -> None:
        """A template, or a mapping kind -> template with a 'default'."""
        if isinstance(value, str):
            self.text(value, where, allowed)
            return
        if not isinstance(value, Mapping) or "default" not in value:
            raise self.fail(
                where, "must be a template or a mapping of problem kind to template with 'default'"
            )
        for kind, template in value.items():
            if kind != "default" and kind not in KINDS:
                raise self.fail(where, f"unknown problem kind {kind!r}; kinds: {KINDS}")
            self.text(template, f"{where}.{kind}", allowed)

    def mapping(self, value: Any, where: str, keys: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        unknown = set(value) - keys
        if unknown:
            raise self.fail(where, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(keys)}")
        return value

    def regex(self, value: Any, where: str, groups: int) -> None:
        if not isinstance(value, str):
            raise self.fail(where, "must be a regular expression string")
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise self.fail(where, f"invalid regular expression ({exc})") from None
        if compiled.groups < groups:
            raise self.fail(where, f"needs {groups} capture group(s)")


def validate(data: Any, source: str) -> dict[str, Any]:
    """Check a pack's data; return it (as a plain dict) or raise :class:`PackError`."""
    c = _Checker(source)
    top = c.mapping(data, "top level", TOP_KEYS)
    for key in ("name", "format", "calls", "targets", "parsers"):
        if key not in top:
            raise c.fail("top level", f"missing required key {key!r}")
    if top["format"] not in ("text", "chat"):
        raise c.fail("format", f"must be 'text' (raw completion) or 'chat' (messages), got {top['format']!r}")
    if top.get("refine", "replace") not in ("replace", "append"):
        raise c.fail("refine", "must be 'replace' or 'append'")
    stops = top.get("stop", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise c.fail("stop", "must be a list of non-empty strings")
    if not isinstance(top.get("max_subtasks", 4), int) or top.get("max_subtasks", 4) < 1:
        raise c.fail("max_subtasks", "must be a positive integer")
    c.per_kind(top.get("problem", "{{question}}"), "problem", {"question", "choices"})
    c.text(top.get("choice_item", "({{letter}}) {{text}}"), "choice_item", {"letter", "text"})
    c.per_kind(top.get("answer_instruction", ""), "answer_instruction", set())
    lists = c.mapping(top.get("lists", {}), "lists", set(LIST_FIELDS))
    for name, spec in lists.items():
        spec = c.mapping(spec, f"lists.{name}", {"head", "item", "sep", "tail", "empty"})
        for part, template in spec.items():
            c.text(template, f"lists.{name}.{part}", LIST_FIELDS[name] if part == "item" else set())
    _validate_calls(c, top["format"], c.mapping(top["calls"], "calls", set(CALLS)))
    _validate_targets(c, top["targets"])
    _validate_parsers(c, top["parsers"])
    refine_target = top["targets"].get("refine", "{{step}}")
    marker = top["parsers"].get("refine", {}).get("after")
    if "scratch" in fields_of(refine_target) and (not marker or marker not in refine_target):
        raise c.fail(
            "parsers.refine.after",
            "targets.refine writes {{scratch}} before the step, so refine's output needs a marker that "
            "ends it: set parsers.refine.after to a string that targets.refine writes between them",
        )
    return dict(copy.deepcopy(top))


def _validate_calls(c: _Checker, fmt: str, calls: Mapping[str, Any]) -> None:
    missing = [name for name in CALLS if name not in calls and name not in OPTIONAL_CALLS]
    if missing:
        raise c.fail("calls", f"missing call(s) {missing}")
    for name, spec in calls.items():
        spec = c.mapping(spec, f"calls.{name}", CALL_KEYS)
        variants = [("", spec)]
        by_kind = c.mapping(spec.get("by_kind", {}), f"calls.{name}.by_kind", set(KINDS))
        variants += [
            (f".by_kind.{k}", c.mapping(v, f"calls.{name}.by_kind.{k}", CALL_KEYS - {"by_kind"}))
            for k, v in by_kind.items()
        ]
        for suffix, variant in variants:
            for part in ("prompt", "system", "user"):
                if part in variant:
                    c.text(variant[part], f"calls.{name}{suffix}.{part}", CALL_FIELDS[name])
        needed = "prompt" if fmt == "text" else "user"
        if needed not in spec:
            raise c.fail(f"calls.{name}", f"a {fmt} pack needs a '{needed}' template")
        tokens = spec.get("max_new_tokens", 256)
        if not isinstance(tokens, int) or tokens < 1:
            raise c.fail(f"calls.{name}.max_new_tokens", f"must be a positive integer, got {tokens!r}")


def _validate_targets(c: _Checker, targets: Any) -> None:
    t = c.mapping(targets, "targets", TARGET_KEYS)
    step = c.mapping(t.get("step", {}), "targets.step", {"calc", "calc_sep", "text", "no_calc"})
    for part in ("calc", "text", "no_calc"):
        if part not in step:
            raise c.fail("targets.step", f"missing {part!r}")
        c.text(step[part], f"targets.step.{part}", TARGET_FIELDS[f"step.{part}"])
    c.per_kind(t.get("answer", "The answer is {{answer}}"), "targets.answer", {"answer"})
    for name in ("subtasks", "plans"):
        spec = c.mapping(t.get(name, {}), f"targets.{name}", {"item", "sep"})
        c.text(
            spec.get("item", "{{" + name[:-1] + "}}"), f"targets.{name}.item", TARGET_FIELDS[f"{name}.item"]
        )
    for name in ("choice", "scores"):
        c.text(t.get(name, ""), f"targets.{name}", TARGET_FIELDS[name])
    c.text(t.get("refine", "{{step}}"), "targets.refine", TARGET_FIELDS["refine"])
    if "step" not in fields_of(t.get("refine", "{{step}}")):
        raise c.fail("targets.refine", "must contain {{step}} (the corrected step)")
    scratch = c.mapping(t.get("scratch", {}), "targets.scratch", {"calc", "sep"})
    c.text(scratch.get("calc", ""), "targets.scratch.calc", TARGET_FIELDS["scratch.calc"])
    c.text(scratch.get("sep", ","), "targets.scratch.sep", set())
    yes_no = t.get("yes_no")
    if not (isinstance(yes_no, list) and len(yes_no) == 2 and all(isinstance(x, str) for x in yes_no)):
        raise c.fail("targets.yes_no", 'must be a list of two strings, e.g. ["yes", "no"]')


def _validate_parsers(c: _Checker, parsers: Any) -> None:
    p = c.mapping(parsers, "parsers", {"subtasks", "plans", "plan_choice", "yes_no", "scores", "refine"})
    refine = c.mapping(p.get("refine", {}), "parsers.refine", {"after"})
    if "after" in refine and not (isinstance(refine["after"], str) and refine["after"]):
        raise c.fail(
            "parsers.refine.after", "must be a non-empty string (the marker that ends refine's scratch work)"
        )
    for name in ("subtasks", "plans"):
        spec = c.mapping(p.get(name, {}), f"parsers.{name}", {"split", "marker"})
        if ("split" in spec) == ("marker" in spec):
            raise c.fail(f"parsers.{name}", "give exactly one of 'split' (a separator) or 'marker' (a regex)")
        if "marker" in spec:
            c.regex(spec["marker"], f"parsers.{name}.marker", 0)
    choice = p.get("plan_choice", [])
    if not isinstance(choice, list) or not choice:
        raise c.fail("parsers.plan_choice", "must be a non-empty list of regexes with one group (the index)")
    for i, pattern in enumerate(choice):
        c.regex(pattern, f"parsers.plan_choice[{i}]", 1)
    yes_no = p.get("yes_no")
    if not (isinstance(yes_no, list) and len(yes_no) == 2):
        raise c.fail("parsers.yes_no", "must be a list of two regexes: [yes, no]")
    for i, pattern in enumerate(yes_no):
        c.regex(pattern, f"parsers.yes_no[{i}]", 0)
    scores = c.mapping(p.get("scores", {}), "parsers.scores", {"mode", "pattern"})
    if scores.get("mode") not in ("sequence", "labeled"):
        raise c.fail("parsers.scores.mode", "must be 'sequence' (7 digits in order) or 'labeled' (A1 … C2)")
    if scores["mode"] == "labeled":
        pattern = scores.get("pattern", "")
        if "{aspect}" not in pattern:
            raise c.fail("parsers.scores.pattern", "must contain {aspect} where the aspect name goes")
        c.regex(pattern.replace("{aspect}", "A1"), "parsers.scores.pattern", 1)
