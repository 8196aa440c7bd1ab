import json

import pytest

from reasonkit.types import Completion, Cost, Problem, SamplingParams, Step, Trace, prompt_text


def make_trace() -> Trace:
    steps = (
        Step("reason", "Q: 1+2*3\n", "2*3=6", Cost(1, 10, 4, 0.25), meta={"scores": [3, 3, 3, 1, 1, 2, 3]}),
        Step("terminate", "...", "The answer is 7", Cost(1, 14, 5, 0.5)),
    )
    return Trace(
        "arith-1", steps, "7", True, Cost(2, 24, 9, 0.75), meta={"strategy": "cot", "ünïcode": "π≈3.14"}
    )


def test_trace_round_trips_through_one_json_line():
    trace = make_trace()
    line = trace.to_json()
    assert "\n" not in line
    back = Trace.from_json(line)
    assert back == trace
    assert back.steps[0].meta["scores"] == [3, 3, 3, 1, 1, 2, 3]
    assert json.loads(line)["cost"] == {"calls": 2, "tokens_in": 24, "tokens_out": 9, "seconds": 0.75}


def test_cost_adds_and_counts_prompt_once_per_call():
    completions = [Completion("a", 10, 3), Completion("b", 10, 5)]
    cost = Cost.of(completions, seconds=1.0)
    assert cost == Cost(calls=1, tokens_in=10, tokens_out=8, seconds=1.0)
    assert (cost + Cost(2, 1, 1, 0.5)).tokens == 20
    assert Cost.of([]) == Cost()


def test_problem_validation_names_the_problem():
    with pytest.raises(ValueError, match="kind must be one of"):
        Problem("x", "q", "1", kind="essay")
    with pytest.raises(ValueError, match="answer must be a string"):
        Problem("x", "q", 1, kind="int")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a non-empty choices"):
        Problem("x", "q", "A", kind="choice")
    p = Problem("x", "q", "B", kind="choice", choices=["1", "2", "3", "4"], meta={"level": 3})
    assert p.choices == ("1", "2", "3", "4")
    assert Problem.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"n": 0}, "n must be"),
        ({"stop": ("",)}, "stop"),
    ],
)
def test_sampling_params_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_sampling_params_determinism():
    assert SamplingParams().deterministic
    assert SamplingParams(temperature=0.7, seed=3).deterministic
    assert not SamplingParams(temperature=0.7).deterministic
    assert SamplingParams(stop=["\n"]).stop == ("\n",)


def test_prompt_text_renders_chat():
    assert prompt_text("plain") == "plain"
    assert (
        prompt_text([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
        == "user: hi\nassistant: yo"
    )
