"""Benchmark-family prompts: the harnesses' wording, the GPQA layout, and user overrides."""

from __future__ import annotations

import pytest

from reasonkit.evals.prompts import PromptsError, benchmark_pack, load_prompts, prompt_for
from reasonkit.packs import PackError
from reasonkit.types import Problem

MATH = Problem(id="m", question="What is $1+1$?", answer="2", kind="math")
AIME = Problem(id="a", question="Find N.", answer="25", kind="int")
MC = Problem(
    id="c", question="Which one?", answer="B", kind="choice", choices=("one", "two", "three", "four")
)

LIGHTEVAL_MATH = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be of "
    "the following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct' (without "
    "quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step "
    "before answering.\n\n"
)
SIMPLE_EVALS_GPQA = (
    "Answer the following multiple choice question. The last line of your response should be of the following "
    "format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before "
    "answering.\n\n"
)


def user(prompt) -> str:
    assert [m["role"] for m in prompt] == ["user"]  # no system prompt mixed in from the base pack
    return prompt[0]["content"]


def test_cot_prompts_match_the_harnesses():
    assert user(prompt_for(MATH, "cot")) == LIGHTEVAL_MATH + MATH.question
    assert user(prompt_for(AIME, "cot")) == LIGHTEVAL_MATH + AIME.question
    assert (
        user(prompt_for(MC, "cot")) == SIMPLE_EVALS_GPQA + "Which one?\n\nA) one\nB) two\nC) three\nD) four"
    )


def test_direct_prompts_ask_for_the_answer_only():
    assert "without any working" in user(prompt_for(MATH, "direct"))
    assert user(prompt_for(MC, "direct")).endswith("Which one?\n\nA) one\nB) two\nC) three\nD) four")
    assert "'Answer: $LETTER'" in user(prompt_for(MC, "direct"))


def test_budgets_and_other_kinds_untouched():
    pack = benchmark_pack()
    assert pack.sampling("cot", "math").max_new_tokens == 4096
    arith = Problem(id="r", question="1+2", answer="3", kind="arith")
    assert "Compute the value of the integer expression 1+2." in prompt_for(arith, "cot")[-1]["content"]


def test_user_override_file(tmp_path):
    path = tmp_path / "qwen.yaml"
    path.write_text(
        "calls:\n  cot:\n    by_kind:\n      math:\n"
        "        system: 'Please reason step by step, and put your final answer within \\boxed{}.'\n"
        "        user: '{{question}}'\n",
        encoding="utf-8",
    )
    prompt = prompt_for(MATH, "cot", prompts=path)
    assert prompt == [
        {
            "role": "system",
            "content": "Please reason step by step, and put your final answer within \\boxed{}.",
        },
        {"role": "user", "content": MATH.question},
    ]
    assert (
        user(prompt_for(AIME, "cot", prompts=path)) == LIGHTEVAL_MATH + AIME.question
    )  # other kinds keep theirs
    mapping = {"calls": {"direct": {"by_kind": {"int": {"user": "Answer: {{question}}"}}}}}
    assert user(prompt_for(AIME, "direct", prompts=mapping)) == "Answer: Find N."
    assert load_prompts()["choice_item"] == "{{letter}}) {{text}}"


def test_bad_prompts_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown prompt style 'tot'"):
        prompt_for(MATH, "tot")
    with pytest.raises(PromptsError, match="does not exist"):
        prompt_for(MATH, prompts=tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(PromptsError, match=r"bad\.yaml must hold a mapping"):
        prompt_for(MATH, prompts=bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "calls:\n  cot:\n    by_kind:\n      math:\n        user: '{{questoin}}'\n", encoding="utf-8"
    )
    with pytest.raises(
        PackError, match=r"typo.yaml: calls.cot.by_kind.math.user: unknown placeholder\(s\) \['questoin'\]"
    ):
        prompt_for(MATH, prompts=typo)
