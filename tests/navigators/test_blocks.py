"""Logic blocks, transition rules and the batching driver (reasonkit.navigators.blocks / episode)."""

from __future__ import annotations

import pytest
from navigator_helpers import ScriptedArithLM

from reasonkit.navigators.blocks import MAX_DEPTH, effective_block
from reasonkit.navigators.episode import Episode, run_programs
from reasonkit.packs import load_pack
from reasonkit.tasks import arith
from reasonkit.types import Completion, Problem, SamplingParams

REASON, DECOMPOSE, DEBATE, REFINE, TERMINATE = range(5)


class RecordingLM:
    """Replies from a table keyed by pack call; records every prompt and every batch."""

    capabilities = frozenset()

    def __init__(self, pack_name: str, replies: dict[str, str], name: str = "recording") -> None:
        self.pack = load_pack(pack_name)
        self.prompt_pack = pack_name
        self.replies = replies
        self.name = name
        self.batches: list[tuple[SamplingParams, int]] = []
        self.prompts: list[object] = []

    def call_of(self, prompt: object) -> str:
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]  # type: ignore[index]
        for call, marker in MARKERS[self.prompt_pack].items():
            if marker in text:
                return call
        raise AssertionError(f"unknown prompt {text!r}")

    def generate(self, prompts, params):
        self.batches.append((params, len(prompts)))
        self.prompts += list(prompts)
        return [[Completion(self.replies[self.call_of(p)], 5, 3)] for p in prompts]


MARKERS = {
    "compact": {
        "reason_step": "<step>", "decompose": "<dec>", "solve_subtask": "<sub>", "summarize": "<sum>",
        "debate_plans": "<plans>", "debate_compare": "<pick>", "debate_follow": "<follow>",
        "refine": "<refine>", "terminate": "<cot>", "final_check": "<done>", "self_evaluate": "<eval>",
    },
    "natural": {
        "decompose": "Please decompose", "solve_subtask": "Please conduct the following Subtask",
        "summarize": "Please give a clear and concise summary", "debate_plans": "propose three different",
        "debate_compare": "review and compare", "debate_follow": "decided on a most promising plan",
        "refine": "check and refine", "terminate": "generate the answer", "final_check": "already exists a final",
        "self_evaluate": "evaluate the current step", "reason_step": "reason exactly ONE more step",
    },
}  # fmt: skip
MARKERS["compact2"] = MARKERS["compact3"] = MARKERS["compact"]  # the same control tokens

PROBLEM = Problem(id="p1", question="3+4*5-6", answer="17", kind="arith")


def _calls(lm: RecordingLM) -> list[str]:
    return [lm.call_of(p) for p in lm.prompts]


def test_refine_at_depth_zero_becomes_reason_and_only_there():
    assert effective_block(REFINE, depth=0) == "reason"
    assert effective_block(REFINE, depth=1) == "refine"
    assert [effective_block(a, 0) for a in (REASON, DECOMPOSE, DEBATE, TERMINATE)] == [
        "reason", "decompose", "debate", "terminate",
    ]  # fmt: skip


@pytest.mark.parametrize("bad", [-1, 5, 2.0, "reason", True, None])
def test_effective_block_rejects_bad_actions(bad):
    with pytest.raises(ValueError, match=r"action must be an integer in 0\.\.4"):
        effective_block(bad, 0)


def test_final_check_yes_ends_the_episode_with_terminate():
    lm = RecordingLM("compact", {"reason_step": "4*5=20|3+20-6", "final_check": "yes",
                                 "terminate": "The answer is 17", "self_evaluate": "3331213"})  # fmt: skip
    episode = Episode(PROBLEM, lm.pack)
    run_programs(lm, [episode.start()])
    [t] = run_programs(lm, [episode.advance(REASON)])
    assert t.done and t.ended_by == "final_check" and t.block == "reason" and t.action == REASON
    assert _calls(lm) == ["self_evaluate", "reason_step", "final_check", "terminate"]
    assert episode.final_text == "The answer is 17" and episode.steps == ["4*5=20|3+20-6"]


def test_final_check_no_continues_with_self_evaluation():
    lm = RecordingLM("compact", {"reason_step": "4*5=20|3+20-6", "final_check": "no",
                                 "self_evaluate": "33312x3", "terminate": "The answer is 17"})  # fmt: skip
    episode = Episode(PROBLEM, lm.pack)
    run_programs(lm, [episode.start()])
    [t] = run_programs(lm, [episode.advance(REASON)])
    assert not t.done and t.scores == (3, 3, 3, 1, 2, 3, 0) and episode.depth == 1
    assert _calls(lm) == ["self_evaluate", "reason_step", "final_check", "self_evaluate"]


def test_max_depth_forces_terminate_after_the_last_block():
    lm = RecordingLM("compact", {"reason_step": "x", "refine": "y", "final_check": "no",
                                 "self_evaluate": "3333333", "terminate": "The answer is 1"})  # fmt: skip
    episode = Episode(PROBLEM, lm.pack)
    run_programs(lm, [episode.start()])
    ends = [run_programs(lm, [episode.advance(a)])[0] for a in (REASON, REFINE, REASON, REFINE, REASON)]
    assert [t.done for t in ends] == [False] * (MAX_DEPTH - 1) + [True]
    assert ends[-1].ended_by == "max_depth" and episode.depth == MAX_DEPTH
    assert _calls(lm)[-2:] == ["final_check", "terminate"]
    with pytest.raises(RuntimeError, match="is over"):
        run_programs(lm, [episode.advance(REASON)])


def test_terminate_action_answers_at_once():
    lm = RecordingLM("compact", {"terminate": "The answer is 17", "self_evaluate": "0003313"})
    episode = Episode(PROBLEM, lm.pack)
    run_programs(lm, [episode.start()])
    [t] = run_programs(lm, [episode.advance(TERMINATE)])
    assert t.done and t.ended_by == "terminate" and t.action == TERMINATE and episode.depth == 0
    assert _calls(lm) == ["self_evaluate", "terminate"]


@pytest.mark.parametrize("pack_name", ["compact", "natural"])
def test_decompose_solves_each_subtask_in_order_then_summarises(pack_name):
    listing = {"compact": "4*5;8-6", "natural": "### Subtask1: 4*5\n### Subtask2: 8-6"}[pack_name]
    scores = {"compact": "3111111", "natural": "A1 score=3"}[pack_name]
    lm = RecordingLM(pack_name, {"decompose": listing, "solve_subtask": "The answer is 20",
                                 "summarize": "SUMMARY", "final_check": "no", "self_evaluate": scores})  # fmt: skip
    episode = Episode(PROBLEM, lm.pack)
    [t] = run_programs(lm, [episode.advance(DECOMPOSE)])
    calls = _calls(lm)
    assert calls == [
        "decompose",
        "solve_subtask",
        "solve_subtask",
        "summarize",
        "final_check",
        "self_evaluate",
    ]
    assert episode.steps == ["SUMMARY"] and t.scores[0] == 3
    # The second subtask sees the first one's result (the paper's sequential subtasks).
    second = lm.prompts[2] if isinstance(lm.prompts[2], str) else lm.prompts[2][-1]["content"]
    assert ("8-6" in second) and (pack_name == "compact" or "Subtask1" in second)
    assert [s.block for s in episode.trace] == ["decompose"] * 4 + ["final_check", "self_evaluate"]


@pytest.mark.parametrize("choice_text, chosen", [("The most promising plan is Plan2: simpler", "B"),
                                                 ("I cannot decide", "A")])  # fmt: skip
def test_debate_follows_the_chosen_plan_and_falls_back_to_plan_one(choice_text, chosen):
    lm = RecordingLM("natural", {"debate_plans": "### Plan1: A\n### Plan2: B\n### Plan3: C",
                                 "debate_compare": choice_text, "debate_follow": "STEP",
                                 "final_check": "no", "self_evaluate": ""})  # fmt: skip
    episode = Episode(PROBLEM, lm.pack)
    [t] = run_programs(lm, [episode.advance(DEBATE)])
    assert _calls(lm)[:3] == ["debate_plans", "debate_compare", "debate_follow"]
    follow = lm.prompts[2][-1]["content"]
    assert f"promising plan:\n{chosen}\n" in follow
    assert episode.steps == ["STEP"] and t.scores == (0,) * 7  # unparsable self-evaluation scores 0


@pytest.mark.parametrize(
    "pack_name, refined, expected",
    [
        ("compact", "FIXED", ["FIXED"]),
        ("natural", "FIXED", ["first", "FIXED"]),
        ("compact3", "2*3~6#FIXED", ["FIXED"]),  # the scratch work before the marker is dropped
        ("compact2", "2*3~6#FIXED", ["2*3~6#FIXED"]),  # a pack without a marker keeps the text
    ],
)
def test_refine_replaces_or_appends_as_the_pack_says(pack_name, refined, expected):
    lm = RecordingLM(pack_name, {"reason_step": "first", "refine": refined, "final_check": "no",
                                 "self_evaluate": "3333333"})  # fmt: skip
    episode = Episode(PROBLEM, lm.pack)
    run_programs(lm, [episode.advance(REASON)])
    run_programs(lm, [episode.advance(REFINE)])
    assert episode.steps == expected


def test_one_block_implementation_two_renderings():
    """The same episode under both packs makes the same calls; only the prompt text differs."""
    replies = {"reason_step": "s", "final_check": "no", "self_evaluate": "3", "terminate": "The answer is 17"}
    calls = {}
    for name in ("compact", "natural"):
        lm = RecordingLM(name, replies)
        episode = Episode(PROBLEM, lm.pack)
        run_programs(
            lm,
            [
                episode.start(),
            ],
        )
        run_programs(lm, [episode.advance(REASON)])
        run_programs(lm, [episode.advance(TERMINATE)])
        calls[name] = (_calls(lm), isinstance(lm.prompts[0], str))
    assert calls["compact"][0] == calls["natural"][0]
    assert calls["compact"][1] and not calls["natural"][1]  # text prompts vs chat messages


def test_run_programs_batches_equal_calls_across_episodes():
    lm = ScriptedArithLM()
    problems = arith.generate(6, split="train", seed=1, n_ops=4)
    episodes = [Episode(p, load_pack("compact")) for p in problems]
    run_programs(lm, [e.start() for e in episodes])
    assert lm.batches == 1 and lm.calls == 6
    lm.batches = lm.calls = 0
    run_programs(lm, [e.advance(REASON) for e in episodes])
    # reason_step, final_check, self_evaluate: three rounds of six prompts (no episode ends at 4 ops).
    assert lm.calls == 18 and lm.batches == 3


def test_episode_records_every_call_with_its_cost():
    lm = ScriptedArithLM()
    [problem] = arith.generate(1, split="train", seed=2, n_ops=3)
    episode = Episode(problem, load_pack("compact"))
    run_programs(lm, [episode.start()])
    while not episode.done:
        run_programs(lm, [episode.advance(REASON)])
    assert episode.final_text == f"The answer is {problem.answer}"
    assert episode.cost.calls == len(episode.trace) == lm.calls
    assert episode.cost.tokens == sum(s.cost.tokens for s in episode.trace) > 0
