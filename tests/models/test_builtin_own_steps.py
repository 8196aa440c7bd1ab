"""The shipped built-in model (v4) on a fixed set of its *own* steps: wrong ones it wrote on test
problems, and right ones beside them (tests/models/builtin_own_steps.json, chosen from
``reasonkit eval own-mistakes --model builtin --problems 400 --steps FILE``; docs/builtin-model.md).

Each step's label is the arith teacher's, checked again here; greedy decoding from the step's state
reproduces it, so these are the model's own steps and not injected ones. Self-evaluation must flag
the wrong ones and leave the right ones alone; refine must repair wrong ones without breaking right
ones. The bounds sit a few steps inside what v4 does on this set (the file records it: flags 31 of 39
wrong and 2 of 39 right, repairs 14, breaks 1); v1 on the same steps flags 0, repairs 9 and breaks 5,
so the flag, repair and break bounds fail on it, and v3 flags 19 (the flag bound fails on it too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonkit.backends.loading import BUILTIN_DIR
from reasonkit.evals.own_mistakes import OwnStep, judge
from reasonkit.tasks.arith.generate import make_problem
from reasonkit.tasks.arith.steps import check_step
from reasonkit.tasks.arith.teacher import current_expression

pytestmark = pytest.mark.skipif(
    not (BUILTIN_DIR / "config.json").is_file(), reason="the built-in model is not in this checkout"
)

STEPS = json.loads((Path(__file__).with_name("builtin_own_steps.json")).read_text())


def _own() -> list[OwnStep]:
    return [
        OwnStep(make_problem(s["question"]), tuple(s["before"]), s["step"], s["ok"]) for s in STEPS["steps"]
    ]


@pytest.fixture(scope="module")
def verdicts(builtin_backend) -> list[dict]:
    return judge(builtin_backend, _own(), batch=64)


@pytest.fixture(scope="module")
def builtin_backend():
    from reasonkit.backends.loading import load_backend

    return load_backend("builtin")


def test_the_labels_are_the_teachers_and_the_steps_are_the_models_own(builtin_backend):
    from reasonkit.kit.base import resolve_pack

    own = _own()
    assert sum(not s.ok for s in own) == STEPS["wrong"] and sum(s.ok for s in own) == STEPS["right"]
    for s in own:
        assert check_step(current_expression(s.problem.question, list(s.before)), s.step).ok == s.ok
    pack = resolve_pack(None, builtin_backend)  # the model's own pack (compact2 for v4)
    params = pack.sampling("reason_step")
    outs = builtin_backend.generate([pack.reason_step(s.problem, list(s.before)) for s in own], params)
    same = sum(c[0].text.strip() == s.step for c, s in zip(outs, own))
    assert same >= 0.95 * len(own)  # greedy from each state writes the step again (CPU kernels may round)


def test_self_evaluation_flags_its_own_slips_and_spares_right_steps(verdicts):
    wrong = [v for v in verdicts if not v["ok"]]
    right = [v for v in verdicts if v["ok"]]
    assert sum(v["flagged"] for v in wrong) >= STEPS["bounds"]["flagged_wrong_at_least"]
    assert sum(v["flagged"] for v in right) <= STEPS["bounds"]["flagged_right_at_most"]


def test_refine_repairs_own_slips_and_leaves_right_steps_right(verdicts):
    wrong = [v for v in verdicts if not v["ok"]]
    right = [v for v in verdicts if v["ok"]]
    assert sum(v["fixed_ok"] for v in wrong) >= STEPS["bounds"]["repaired_at_least"]
    assert sum(not v["fixed_ok"] for v in right) <= STEPS["bounds"]["broken_at_most"]


def test_sampled_refine_is_seeded_and_self_evaluation_stays_greedy(builtin_backend, verdicts):
    wrong = [s for s in _own() if not s.ok][:16]
    first = judge(builtin_backend, wrong, batch=64, refine_temperature=1.0, seed=0)
    again = judge(builtin_backend, wrong, batch=64, refine_temperature=1.0, seed=0)
    other = judge(builtin_backend, wrong, batch=64, refine_temperature=1.0, seed=1)
    assert [r["refined"] for r in first] == [r["refined"] for r in again]
    assert [r["refined"] for r in first] != [r["refined"] for r in other]
    greedy = [v for v in verdicts if not v["ok"]][:16]
    assert [r["self_evaluation"] for r in first] == [v["self_evaluation"] for v in greedy]


def test_the_command_writes_figures_that_are_the_tally_of_its_steps_file(tmp_path, capsys):
    from reasonkit.evals.own_mistakes import own_mistakes_command, tally

    out, steps = tmp_path / "own.json", tmp_path / "steps.jsonl"
    argv = ["--model", "builtin", "--problems", "8", "--threads", "1", "--out", str(out), "--steps", str(steps)]  # fmt: skip
    assert own_mistakes_command(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    records = [json.loads(line) for line in steps.read_text().splitlines()]
    counts, figures = tally(records)
    assert results["problems"] == 8 and len(records) == counts["wrong"] + counts["right"] >= 8
    assert {k: results["figures"][k] for k in figures} == figures
    assert {k: results["counts"][k] for k in counts} == counts and results["counts"]["summaries"] == 8
    assert "self_eval_flags_wrong" in printed and "(target >= 0.6)" in printed
    assert "gated_repairs_wrong" in printed and "(no target: refine only on a flag)" in printed
