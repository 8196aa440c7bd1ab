"""Controller and baseline strategies over a real tiny transformers model."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch
from tiny_models import CHAT_TEMPLATE, build_model, build_tokenizer

from reasonkit.answers import extract_int
from reasonkit.backends.hf import HFBackend
from reasonkit.controller import Controller, RunDirError, format_trace, solve, summarize
from reasonkit.rundir import read_jsonl
from reasonkit.strategies import UNLIMITED, Budget, CoT, Direct, SelfConsistency, majority_vote, make_strategy
from reasonkit.types import Cost, Problem, SamplingParams, Trace


@pytest.fixture(scope="module")
def backend() -> HFBackend:
    torch.set_num_threads(1)
    tokenizer = build_tokenizer(CHAT_TEMPLATE)
    return HFBackend(build_model(tokenizer, "llama"), tokenizer, batch_size=8)


def problems(n: int = 7) -> list[Problem]:
    return [
        Problem(id=f"p{i}", question=f"What is {i} + {2 * i}?", answer=str(3 * i), kind="int")
        for i in range(n)
    ]


SHORT = SamplingParams(max_new_tokens=6)


def untimed(trace: Trace) -> str:
    """A trace's JSON without wall-clock seconds, which differ between two runs of the same thing."""
    data = trace.to_dict()
    for part in [data, *data["steps"]]:
        part["cost"].pop("seconds")
    return json.dumps(data, sort_keys=True)


class Interrupting:
    """A strategy that stops the run (as Ctrl-C would) when asked for its ``stop_at``-th batch."""

    def __init__(self, inner, stop_at: int) -> None:
        self.inner, self.stop_at, self.calls = inner, stop_at, 0
        self.name = inner.name

    def solve(self, batch, backend, budget=UNLIMITED):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.solve(batch, backend, budget)


def test_interrupted_run_resumes_without_duplicates_or_losses(tmp_path, backend):
    full = Controller(backend, Direct(params=SHORT), tmp_path / "full", batch_size=2, progress=False).run(
        problems()
    )

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        Controller(backend, Interrupting(Direct(params=SHORT), 3), out, batch_size=2, progress=False).run(
            problems()
        )
    assert [r["problem_id"] for r in read_jsonl(out / "records.jsonl")] == ["p0", "p1", "p2", "p3"]
    # a crash mid-write leaves a torn line: resume must drop it and redo that problem
    with (out / "records.jsonl").open("a") as handle:
        handle.write('{"problem_id": "p4", "ste')
    result = Controller(backend, Direct(params=SHORT), out, batch_size=2, progress=False).run(problems())

    ids = [r["problem_id"] for r in read_jsonl(out / "records.jsonl")]
    assert sorted(ids) == [f"p{i}" for i in range(7)] and len(ids) == 7
    assert [untimed(t) for t in result.traces] == [untimed(t) for t in full.traces]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 7 and summary["calls_per_problem"] == 1.0


class Sleepy:
    """Direct, plus a fixed pause per batch: wall time that must add up across legs."""

    def __init__(self, pause: float) -> None:
        self.inner, self.pause, self.name = Direct(params=SHORT), pause, "direct"

    def solve(self, batch, backend, budget=UNLIMITED):
        time.sleep(self.pause)
        return self.inner.solve(batch, backend, budget)


def test_wall_seconds_add_up_across_interrupted_legs(tmp_path, backend):
    # 7 problems in batches of 2 = 4 batches of >= 0.3 s: 2 before the interruption, 2 after
    with pytest.raises(KeyboardInterrupt):
        Controller(backend, Interrupting(Sleepy(0.3), 3), tmp_path, batch_size=2, progress=False).run(
            problems()
        )
    summary = Controller(backend, Sleepy(0.3), tmp_path, batch_size=2, progress=False).run(problems()).summary
    assert summary["wall_seconds"] >= 4 * 0.3


def test_records_are_graded_traces_with_costs(tmp_path, backend):
    result = Controller(backend, Direct(params=SHORT), tmp_path, progress=False).run(problems(4))
    for problem, trace in zip(problems(4), result.traces):
        (step,) = trace.steps
        assert trace.answer == extract_int(step.output)
        assert trace.correct == (extract_int(step.output) == problem.answer)
        assert trace.cost.calls == 1 and 0 < trace.cost.tokens_out <= SHORT.max_new_tokens
        assert trace.cost.tokens_in == len(backend.encode(backend_prompt(problem)))
    assert result.summary == json.loads((tmp_path / "summary.json").read_text())


def backend_prompt(problem: Problem):
    from reasonkit.packs import load_pack

    return load_pack("natural").direct(problem)


def test_run_dir_guards(tmp_path, backend):
    Controller(backend, Direct(params=SHORT), tmp_path, progress=False).run(problems(2))
    with pytest.raises(RunDirError, match="different run"):
        Controller(backend, CoT(params=SHORT), tmp_path, progress=False).run(problems(2))
    other = [Problem(id="x1", question="?", answer="1", kind="int")]
    with pytest.raises(RunDirError, match="not in this problem set"):
        Controller(backend, Direct(params=SHORT), tmp_path, progress=False).run(other)
    with pytest.raises(RunDirError, match="unique"):
        Controller(backend, Direct(params=SHORT), progress=False).run(problems(2) + problems(1))
    # the same strategy name with other settings: refused, naming the setting
    sc_dir = tmp_path / "sc"
    Controller(backend, SelfConsistency(n=2, temperature=0.7), sc_dir, progress=False).run(problems(1))
    with pytest.raises(RunDirError, match=r"temperature: stored 0\.7 vs now 0\.9"):
        Controller(backend, SelfConsistency(n=2, temperature=0.9), sc_dir, progress=False).run(problems(1))


def test_summary_hand_computed():
    traces = [
        Trace("a", (), "1", True, Cost(2, 10, 5)),
        Trace("b", (), "2", False, Cost(1, 20, 5)),
        Trace("c", (), None, None, Cost(3, 0, 0), meta={"budget_exhausted": True}),
    ]
    s = summarize(traces, 1.5)
    assert s["accuracy"] == 0.5 and s["graded"] == 2 and s["n"] == 3
    assert s["tokens_per_problem"] == 40 / 3 and s["calls_per_problem"] == 2.0
    assert s["budget_exhausted"] == 1 and s["wall_seconds"] == 1.5


def test_majority_vote_is_deterministic():
    assert majority_vote(["12", " 7", "7 ", None, "12"]) == (0, {"12": 2, "7": 2})
    assert majority_vote(["3", "5", "5"]) == (1, {"3": 1, "5": 2})
    assert majority_vote([None, ""]) == (None, {})


def test_self_consistency_samples_and_votes(backend):
    sc = SelfConsistency(n=4, temperature=1.0, seed=3)
    first = sc.solve(problems(3), backend, Budget(max_tokens=8))
    again = sc.solve(problems(3), backend, Budget(max_tokens=8))
    assert [untimed(t) for t in first] == [untimed(t) for t in again]  # seeded sampling reproduces
    for trace in first:
        (step,) = trace.steps
        assert len(step.meta["samples"]) == 4
        winner, votes = majority_vote(step.meta["answers"])
        assert trace.meta["votes"] == votes
        if winner is not None:
            assert step.output == step.meta["samples"][winner]
    with pytest.raises(ValueError, match="temperature"):
        SelfConsistency(temperature=0.0)


def test_budget_caps_single_call_tokens(backend):
    traces = Direct(params=SamplingParams(max_new_tokens=50)).solve(
        problems(2), backend, Budget(max_tokens=3)
    )
    assert all(t.cost.tokens_out <= 3 for t in traces)
    with pytest.raises(ValueError, match="max_calls"):
        Budget(max_calls=0)


def test_make_strategy_and_solve(backend):
    assert make_strategy("sc", n=3).name == "sc3"
    with pytest.raises(ValueError, match="unknown strategy 'tot'"):
        make_strategy("tot")
    trace = solve("What is 1 + 2?", model=backend, strategy=Direct(params=SHORT), answer="3", kind="int")
    assert trace.problem_id == "q0" and trace.correct is not None
    assert "answer:" in format_trace(trace)


def test_solve_on_the_builtin_model_prints_the_answer_it_graded():
    # the README's first example: no --kind, so the model's own kind (arith) is used
    trace = solve("48-7*(3+2)", model="builtin", strategy="cot", answer="13")
    assert (trace.answer, trace.correct, trace.meta["kind"]) == ("13", True, "arith")
    assert format_trace(trace).splitlines()[-2] == "answer: 13  (correct)"
    # asked as a math problem, it is graded by Math-Verify and shows Math-Verify's reading
    as_math = solve("48-7*(3+2)", model="builtin", strategy="cot", answer="13", kind="math")
    assert (as_math.answer, as_math.correct) == ("13", True)


def test_a_model_trained_for_one_kind_warns_once_on_others(backend):
    from reasonkit.backends.loading import load_backend

    builtin = load_backend("builtin")
    assert builtin.kinds == ("arith",) and backend.kinds is None
    math_problems = [Problem(id=f"m{i}", question=f"{i}+1", answer=str(i + 1), kind="math") for i in range(3)]
    with pytest.warns(UserWarning, match=r"trained only on the arith task.*kind math") as caught:
        Controller(builtin, Direct(), batch_size=2, progress=False).run(math_problems)
    assert len([w for w in caught if "trained only" in str(w.message)]) == 1
    arith_problems = [Problem(id="a", question="2+3", answer="5", kind="arith")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own task, and a general-purpose model: no warning
        Controller(builtin, Direct(), progress=False).run(arith_problems)
        Controller(backend, Direct(params=SHORT), progress=False).run(math_problems)
    with warnings.catch_warnings(record=True) as chat:
        warnings.simplefilter("always")
        builtin.generate([[{"role": "user", "content": "hi"}]] * 2, SamplingParams(max_new_tokens=2))
    assert [str(w.message)[:61] for w in chat] == [
        "'builtin' was trained only on the arith task's compact prompt"
    ]
