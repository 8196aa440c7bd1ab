"""Prompt packs: rendering of every call, parser round trips, robustness, overrides, bad pack files."""

import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonkit.answers import extract_choice, extract_int, extract_math
from reasonkit.packs import (
    ASPECT_MEANINGS,
    ASPECTS,
    BLOCK_CALLS,
    BLOCK_IDS,
    BLOCKS,
    CALLS,
    OPTIONAL_CALLS,
    PackError,
    PromptPack,
    load_pack,
)
from reasonkit.types import Problem

COMPACT = load_pack("compact")
NATURAL = load_pack("natural")
PACKS = [COMPACT, load_pack("compact2"), load_pack("compact3"), NATURAL]
ARITH = Problem(id="a", question="3+4*5", answer="23", kind="arith")
PROBLEMS = [
    ARITH,
    Problem(id="i", question="How many primes are below 10?", answer="4", kind="int"),
    Problem(id="m", question="Simplify $\\frac{2}{4}$.", answer="\\frac{1}{2}", kind="math"),
    Problem(
        id="c", question="Which is a noble gas?", answer="B", kind="choice", choices=("N", "Ne", "O", "H")
    ),
]
STEPS = ["4*5=20|3+20"]


def _render_all(pack: PromptPack, problem: Problem, steps: list[str]) -> dict:
    subtasks, results, plans = ["4*5", "3+1"], ["4*5=20|20;The answer is 20", "4"], ["4*5", "3+4", "4*6"]
    return {
        "direct": pack.direct(problem),
        "cot": pack.cot(problem),
        "reason_step": pack.reason_step(problem, steps),
        "decompose": pack.decompose(problem, steps),
        "solve_subtask": pack.solve_subtask(problem, steps, subtasks, results[:1], 1),
        "summarize": pack.summarize(problem, steps, subtasks, results),
        "debate_plans": pack.debate_plans(problem, steps),
        "debate_compare": pack.debate_compare(problem, steps, plans),
        "debate_follow": pack.debate_follow(problem, steps, plans, 2),
        "refine": pack.refine(problem, steps),
        "terminate": pack.terminate(problem, steps),
        "final_check": pack.final_check(problem, steps),
        "self_evaluate": pack.self_evaluate(problem, steps),
        "answer": pack.answer(problem, steps),
    }


def test_block_vocabulary() -> None:
    assert BLOCKS == ("reason", "decompose", "debate", "refine", "terminate")
    assert [BLOCK_IDS[b] for b in BLOCKS] == [0, 1, 2, 3, 4]
    assert ASPECTS == ("A1", "A2", "A3", "B1", "B2", "C1", "C2")
    assert set(ASPECT_MEANINGS) == set(ASPECTS)
    assert {c for calls in BLOCK_CALLS.values() for c in calls} | {
        "direct",
        "cot",
        "final_check",
        "self_evaluate",
        "answer",
    } == set(CALLS)
    assert set(OPTIONAL_CALLS) <= set(CALLS) and set(OPTIONAL_CALLS.values()) <= set(CALLS)
    code = (
        "import sys, reasonkit.packs.blocks; assert not {'torch', 'yaml', 'transformers'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compact_renderings_are_exact() -> None:
    got = _render_all(COMPACT, ARITH, STEPS)
    assert got == {
        "direct": "<q>3+4*5<ans>",
        "cot": "<q>3+4*5<cot>",
        "reason_step": "<q>3+4*5;4*5=20|3+20<step>",
        "decompose": "<q>3+4*5;4*5=20|3+20<dec>",
        "solve_subtask": "<q>3+1<sub>",
        "summarize": "<q>3+4*5;4*5=20|3+20<sum>4*5=20,3+1=4",
        "debate_plans": "<q>3+4*5;4*5=20|3+20<plans>",
        "debate_compare": "<q>3+4*5;4*5=20|3+20<pick>4*5;3+4;4*6",
        "debate_follow": "<q>3+4*5;4*5=20|3+20<follow>4*6",
        "refine": "<q>3+4*5;4*5=20|3+20<refine>",
        "terminate": "<q>3+4*5<cot>4*5=20|3+20;",
        "final_check": "<q>3+4*5;4*5=20|3+20<done>",
        "self_evaluate": "<q>3+4*5;4*5=20|3+20<eval>",
        "answer": "<q>3+4*5;4*5=20|3+20<ans>",
    }
    # terminate on a bare problem is exactly the chain-of-thought prompt
    assert COMPACT.terminate(ARITH, []) == COMPACT.cot(ARITH)
    assert COMPACT.refine_replaces_last and not NATURAL.refine_replaces_last


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.kind)
def test_natural_renders_every_call_as_chat(problem: Problem) -> None:
    for call, messages in _render_all(NATURAL, problem, STEPS).items():
        assert isinstance(messages, list) and messages[-1]["role"] == "user", call
        text = "\n".join(m["content"] for m in messages)
        assert problem.question in text or call == "summarize", call
        assert "{{" not in text, call
        if call not in ("direct", "cot", "summarize", "solve_subtask"):
            assert "STEP1:\n4*5=20|3+20" in text
    terminate = NATURAL.terminate(problem, STEPS)[-1]["content"]
    assert NATURAL.answer(problem, STEPS) == NATURAL.terminate(problem, STEPS)  # optional call, falls back
    expected = {
        "arith": "The answer is [NUMBER]",
        "int": "The answer is [NUMBER]",
        "choice": "(CHOICE)",
        "math": "\\boxed{}",
    }
    assert expected[problem.kind] in terminate
    if problem.kind == "choice":
        assert "(B) Ne" in terminate


def test_natural_prompts_use_the_papers_formats() -> None:
    assert "### Subtask1:" in NATURAL.decompose(ARITH, [])[-1]["content"]
    assert "### Plan1:" in NATURAL.debate_plans(ARITH, [])[-1]["content"]
    compare = NATURAL.debate_compare(ARITH, [], ["a", "b", "c"])[-1]["content"]
    assert "### Plan2: b" in compare and "The most promising plan is Plan[INDEX]: [REASON]" in compare
    evaluate = NATURAL.self_evaluate(ARITH, STEPS)[-1]["content"]
    assert all(f"{a}:" in evaluate for a in ASPECTS) and "A1 score=[SCORE] reason=[REASON]" in evaluate
    math_cot = NATURAL.cot(PROBLEMS[2])
    assert math_cot[0] == {
        "role": "system",
        "content": "Please reason step by step, and put your final answer within \\boxed{}.",
    }


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_targets_round_trip_through_parsers(pack: PromptPack) -> None:
    assert pack.parse_subtasks(pack.format_subtasks(["4*5", "(2-1)*3"])) == ["4*5", "(2-1)*3"]
    assert pack.parse_plans(pack.format_plans(["4*5", "3+4", "4*6"])) == ["4*5", "3+4", "4*6"]
    for i in range(3):
        assert pack.parse_plan_choice(pack.format_choice(i), 3) == i
    assert pack.parse_yes_no(pack.format_yes_no(True)) is True
    assert pack.parse_yes_no(pack.format_yes_no(False)) is False
    assert extract_int(pack.format_answer(-42)) == "-42"
    assert extract_int(pack.format_cot(["4*5=20|3+20", "3+20=23|23"], 23)) == "23"
    assert pack.result_value(pack.format_cot(["9*9=81|81"], 81)) == "81"


@settings(max_examples=100, deadline=None)
@given(st.tuples(*[st.integers(0, 3)] * 7))
def test_scores_round_trip(scores: tuple) -> None:
    for pack in PACKS:
        assert pack.parse_scores(pack.format_scores(scores)) == scores


def test_natural_answers_per_kind_are_extractable() -> None:
    assert extract_choice(NATURAL.format_answer("C", "choice")) == "C"
    assert extract_math(NATURAL.format_answer("\\frac{1}{2}", "math")) == "\\frac{1}{2}"


def test_parsers_on_model_like_text() -> None:
    assert NATURAL.parse_plan_choice("After review, The most promising plan is Plan3: it is short.", 3) == 2
    assert NATURAL.parse_plan_choice("the most promising plan is **Plan 2**", 3) == 1
    assert NATURAL.parse_plan_choice("The most promising plan is Plan7: x", 3) == 0  # out of range
    assert NATURAL.parse_plan_choice("I like them all", 3) == 0
    assert COMPACT.parse_plan_choice("2", 3) == 1 and COMPACT.parse_plan_choice("x", 3) == 0
    paper_style = "A1 score=3 reason=ok\nA2 score=2 reason=..\nA3 score=[1]\nB1: 3\nB2 score=9\nC1 score=x\n"
    assert NATURAL.parse_scores(paper_style) == (3, 2, 1, 3, 0, 0, 0)
    assert COMPACT.parse_scores("33912") == (3, 3, 0, 1, 2, 0, 0)
    assert COMPACT.parse_scores("3331213\n2222222") == (3, 3, 3, 1, 2, 1, 3)  # only the first line
    assert NATURAL.parse_subtasks("### Subtask1: add\n### Subtask2: multiply\n") == ["add", "multiply"]
    assert NATURAL.parse_subtasks("just do it") == ["just do it"]  # the paper's fallback: one subtask
    assert NATURAL.parse_subtasks("") == []
    assert COMPACT.parse_plans("4*5") == ["4*5", "4*5", "4*5"] and COMPACT.parse_plans("") == ["", "", ""]
    assert COMPACT.parse_subtasks("1+2;3*4;;5-1;6+6;7+7;8+8") == ["1+2", "3*4", "5-1", "6+6"]
    assert NATURAL.parse_yes_no("No, not yet. Yes would be wrong.") is False
    assert NATURAL.parse_yes_no("Yes.") is True and NATURAL.parse_yes_no("maybe") is False
    assert COMPACT.parse_yes_no("yes\nno") is True
    with pytest.raises(ValueError, match="n >= 1"):
        COMPACT.parse_plan_choice("1", 0)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.integers(1, 5))
def test_parsers_never_raise(text: str, n: int) -> None:
    for pack in PACKS:
        scores = pack.parse_scores(text)
        assert len(scores) == 7 and all(s in (0, 1, 2, 3) for s in scores)
        assert len(pack.parse_subtasks(text)) <= pack.max_subtasks
        assert len(pack.parse_plans(text)) == 3
        assert 0 <= pack.parse_plan_choice(text, n) < n
        assert isinstance(pack.parse_yes_no(text), bool)
        assert isinstance(pack.result_value(text), str)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="0123456789;|=,<>{}qans ", max_size=50))
def test_model_text_is_inserted_literally(step: str) -> None:
    prompt = COMPACT.reason_step(ARITH, [step, "{{question}}"])
    assert prompt == f"<q>3+4*5;{step.strip()};{{{{question}}}}<step>"


def test_sampling_hints() -> None:
    s = COMPACT.sampling("cot")
    assert s.stop == ("\n",) and s.temperature == 0.0 and s.max_new_tokens >= 384
    assert COMPACT.sampling("self_evaluate").max_new_tokens >= 8
    assert NATURAL.sampling("reason_step").stop == ()
    with pytest.raises(ValueError, match="unknown call"):
        COMPACT.sampling("ponder")


def test_per_kind_overrides_hook() -> None:
    custom = load_pack(
        "natural",
        overrides={"calls": {"cot": {"by_kind": {"math": {"system": "", "user": "Solve: {{question}}"}}}}},
    )
    assert custom.cot(PROBLEMS[2]) == [{"role": "user", "content": "Solve: Simplify $\\frac{2}{4}$."}]
    assert custom.cot(ARITH) == NATURAL.cot(ARITH)  # other kinds keep the default
    assert NATURAL.cot(PROBLEMS[2])[0]["role"] == "system"  # the original is untouched
    with pytest.raises(
        PackError, match=r"calls\.cot\.by_kind\.int\.user: unknown placeholder\(s\) \['questoin'\]"
    ):
        NATURAL.with_overrides({"calls": {"cot": {"by_kind": {"int": {"user": "{{questoin}}"}}}}})


def test_user_pack_file_and_clear_errors(tmp_path) -> None:
    data = COMPACT.to_dict()
    data["name"] = "mine"
    data["calls"]["cot"]["prompt"] = "Q:{{question}}=>"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    mine = load_pack(path)
    assert mine.name == "mine" and mine.cot(ARITH) == "Q:3+4*5=>"
    assert mine.reason_step(ARITH, STEPS) == COMPACT.reason_step(ARITH, STEPS)

    with pytest.raises(PackError, match="built-in packs are compact, compact2, compact3, natural"):
        load_pack(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(PackError, match="not valid YAML"):
        load_pack(tmp_path / "broken.yaml")
    bad_cases = [
        ({"calls": {**data["calls"], "refine": None}}, "calls.refine: must be a mapping"),
        ({"format": "html"}, "format: must be 'text'"),
        ({"colour": "red"}, "unknown key"),
        ({"parsers": {**data["parsers"], "plan_choice": ["(unclosed"]}}, "invalid regular expression"),
        ({"parsers": {**data["parsers"], "plan_choice": ["[0-9]"]}}, "capture group"),
        ({"targets": {**data["targets"], "yes_no": "yes"}}, "yes_no"),
    ]
    for change, message in bad_cases:
        with pytest.raises(PackError, match=message):
            PromptPack({**data, **change}, source="case")
    missing = {k: v for k, v in data["calls"].items() if k != "summarize"}
    with pytest.raises(PackError, match=r"missing call\(s\) \['summarize'\]"):
        PromptPack({**data, "calls": missing}, source="case")


def test_compact2_is_compact_with_a_closed_summarize_prompt() -> None:
    compact2 = load_pack("compact2")
    assert compact2.name == "compact2" and compact2.control_tokens == COMPACT.control_tokens
    ours, theirs = _render_all(compact2, ARITH, STEPS), _render_all(COMPACT, ARITH, STEPS)
    assert {call for call in ours if ours[call] != theirs[call]} == {"summarize"}
    results = ["4*5=20|20;The answer is 20"]
    assert COMPACT.summarize(ARITH, [], ["4*5"], results) == "<q>3+4*5<sum>4*5=20"
    assert compact2.summarize(ARITH, [], ["4*5"], results) == "<q>3+4*5<sum>4*5=20<sum>"
    data, data2 = COMPACT.to_dict(), compact2.to_dict()
    assert {k for k in data if data[k] != data2[k]} == {"name", "description", "calls"}


def test_compact3_refine_writes_reversed_values_before_the_step_and_parses_them_away() -> None:
    compact2, compact3 = load_pack("compact2"), load_pack("compact3")
    ours, theirs = _render_all(compact3, ARITH, STEPS), _render_all(compact2, ARITH, STEPS)
    assert ours == theirs  # every prompt is compact2's; only refine's target and parser differ
    data2, data3 = compact2.to_dict(), compact3.to_dict()
    assert {k for k in data2 if data2[k] != data3[k]} == {
        "name",
        "description",
        "calls",
        "targets",
        "parsers",
    }
    assert {c for c in data2["calls"] if data2["calls"][c] != data3["calls"][c]} == {"refine"}
    # by hand: 934 least significant digit first is 439; the sign stays in front (-436 -> -634)
    target = compact3.format_refine("68+866=934|934-286", [("68+866", 934)])
    assert target == "68+866~439#68+866=934|934-286"
    assert compact3.format_refine("1-437=-436|-436", [("1-437", "-436")]) == "1-437~-634#1-437=-436|-436"
    two = compact3.format_refine("2*3=6,4*5=20|6+20", [("2*3", 6), ("4*5", 20)])
    assert two == "2*3~6,4*5~02#2*3=6,4*5=20|6+20"
    assert compact3.format_refine("|7", []) == "#|7"  # nothing computed: no scratch, the marker stays
    assert compact3.parse_refine(target) == "68+866=934|934-286"
    assert compact3.parse_refine("a~1#b~2#4*5=20|3+20\n") == "4*5=20|3+20"  # the text after the last marker
    assert compact3.parse_refine("4*5=20|3+20") == "4*5=20|3+20"  # no scratch written: the whole output
    for pack in (COMPACT, compact2, NATURAL):  # packs without scratch: target and output are the step
        assert pack.format_refine("4*5=20|3+20", [("4*5", 20)]) == "4*5=20|3+20"
        assert pack.parse_refine(" 4*5=20|3+20#x\n") == "4*5=20|3+20#x"


def test_refine_scratch_needs_a_marker_and_the_step() -> None:
    data = load_pack("compact3").to_dict()
    cases = [
        ({"parsers": {**data["parsers"], "refine": {}}}, "parsers.refine.after: targets.refine writes"),
        ({"parsers": {**data["parsers"], "refine": {"after": "@"}}}, "a string that targets.refine writes"),
        ({"parsers": {**data["parsers"], "refine": {"after": ""}}}, "must be a non-empty string"),
        ({"targets": {**data["targets"], "refine": "{{scratch}}#"}}, r"must contain \{\{step\}\}"),
        ({"targets": {**data["targets"], "refine": "{{scratc}}#{{step}}"}}, "unknown placeholder"),
        ({"targets": {**data["targets"], "scratch": {"calc": "{{digits}}"}}}, "unknown placeholder"),
    ]
    for change, message in cases:
        with pytest.raises(PackError, match=message):
            PromptPack({**data, **change}, source="case")


def test_a_pack_file_extends_another_and_names_bad_bases(tmp_path) -> None:
    (tmp_path / "mine.yaml").write_text(
        'extends: compact\nname: mine\ncalls:\n  cot: {prompt: "Q:{{question}}=>"}\n'
    )
    mine = load_pack(tmp_path / "mine.yaml")
    assert mine.cot(ARITH) == "Q:3+4*5=>"
    assert mine.sampling("cot") == COMPACT.sampling("cot")  # merged key by key: max_new_tokens kept
    assert mine.reason_step(ARITH, STEPS) == COMPACT.reason_step(ARITH, STEPS)
    (tmp_path / "theirs.yaml").write_text("extends: mine.yaml\nname: theirs\n")  # a path next to the file
    assert load_pack(tmp_path / "theirs.yaml").cot(ARITH) == "Q:3+4*5=>"
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\nname: loop\n")
    with pytest.raises(PackError, match="cycle"):
        load_pack(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere\nname: orphan\n")
    with pytest.raises(PackError, match="'nowhere', which is neither a built-in pack"):
        load_pack(tmp_path / "orphan.yaml")
    (tmp_path / "odd.yaml").write_text("extends: [compact]\nname: odd\n")
    with pytest.raises(PackError, match="extends must name a pack"):
        load_pack(tmp_path / "odd.yaml")


def test_bad_call_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="outside the 2 subtasks"):
        COMPACT.solve_subtask(ARITH, [], ["1+1", "2+2"], [], 2)
    with pytest.raises(ValueError, match="2 subtasks but 1 results"):
        COMPACT.summarize(ARITH, [], ["1+1", "2+2"], ["2"])
    with pytest.raises(ValueError, match="outside the 3 plans"):
        COMPACT.debate_follow(ARITH, [], ["a", "b", "c"], 3)
    with pytest.raises(TypeError, match="list of step strings"):
        COMPACT.reason_step(ARITH, "4*5=20|3+20")  # type: ignore[arg-type]
