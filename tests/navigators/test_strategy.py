"""RLoT and FixedSequence strategies: greedy navigation, fixed orders, budgets, transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from navigator_helpers import ScriptedArithLM, short_pack

from reasonkit.navigators.navigator import Navigator, NavigatorFileError
from reasonkit.navigators.network import DuelingQNet
from reasonkit.navigators.strategy import FixedSequence, RLoT
from reasonkit.strategies import STRATEGIES, Budget, make_strategy
from reasonkit.tasks import arith
from reasonkit.types import Problem

META = {"model": "scripted-arith", "task": "arith", "reward": "self-eval", "episodes": "1", "max_depth": "5"}


def _biased_navigator(block: int) -> Navigator:
    """A navigator whose greedy choice is always ``block`` (its last bias dominates)."""
    net = DuelingQNet()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.advantage[2].bias[block] = 1.0
    return Navigator(net, dict(META))


@pytest.fixture(scope="module")
def problems():
    return arith.generate(8, split="test", seed=0, n_ops=[3, 5])


def test_rlot_follows_its_navigator_greedily(tmp_path, problems):
    path = _biased_navigator(1).save(tmp_path / "decompose.safetensors")
    lm = ScriptedArithLM()
    traces = RLoT(navigator=str(path)).solve(problems, lm)
    assert [t.problem_id for t in traces] == [p.id for p in problems]
    for trace in traces:
        assert set(trace.meta["blocks"]) == {"decompose"} and trace.meta["ended_by"] == "final_check"
        assert trace.correct is True  # decompose solves whole sub-expressions: the scripted model finishes
        assert trace.cost.calls == len(trace.steps) and trace.meta["navigator"] == str(path)
    # Every problem advanced together: far fewer backend batches than calls.
    assert lm.batches < lm.calls / 4


def test_refine_first_runs_reason(problems):
    traces = RLoT(navigator=_biased_navigator(3)).solve(problems[:2], ScriptedArithLM())
    assert all(t.meta["blocks"][0] == "reason" for t in traces)
    assert all(set(t.meta["blocks"][1:]) <= {"refine"} for t in traces)
    assert all(t.meta["ended_by"] == "max_depth" for t in traces)


def test_fixed_sequence_runs_in_order_then_terminates(problems):
    strategy = FixedSequence("debate,refine")
    traces = strategy.solve(problems, ScriptedArithLM(answer_ops=10))
    for trace in traces:
        assert trace.meta["blocks"] in (["debate"], ["debate", "refine"], ["debate", "refine", "terminate"])
        assert trace.correct  # this model answers any expression right when asked
    assert strategy.name == "fixed:debate,refine"


@pytest.mark.parametrize("blocks", ["", "reason,jump", ["think"]])
def test_fixed_sequence_rejects_unknown_blocks(blocks):
    with pytest.raises(ValueError, match="blocks must be"):
        FixedSequence(blocks)


def test_budget_stops_a_problem_before_its_next_block(problems):
    traces = FixedSequence("reason,reason,reason,reason,reason").solve(
        problems, ScriptedArithLM(), Budget(max_calls=4)
    )
    for trace in traces:
        assert trace.cost.calls <= 4 + 3  # the block in flight finishes (reason + check + evaluate)
        if trace.meta.get("budget_exhausted"):
            assert trace.meta["ended_by"] == "budget"


def test_missing_navigator_file_fails_clearly(tmp_path):
    with pytest.raises(NavigatorFileError, match="no navigator file"):
        RLoT(navigator=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="needs a navigator: pass --navigator"):
        RLoT()


def test_transfer_a_navigator_runs_unchanged_on_another_model_and_task(tmp_path, tiny_hf_backend):
    """Trained on (scripted arith model, arith), used on (a transformers model, natural-language int task)."""
    torch.manual_seed(0)
    path = Navigator(DuelingQNet(), dict(META)).save(tmp_path / "nav.safetensors")
    other_task = [
        Problem(id=f"g{i}", question=f"Tom has {i} apples and buys {i + 3} more. How many now?",
                answer=str(2 * i + 3), kind="int")
        for i in range(3)
    ]  # fmt: skip
    strategy = RLoT(navigator=str(path), pack=short_pack(4, base="natural"))
    traces = strategy.solve(other_task, tiny_hf_backend)
    assert [t.problem_id for t in traces] == ["g0", "g1", "g2"]
    assert all(t.correct is not None and t.meta["navigator_task"] == "arith" for t in traces)
    assert all(len(t.meta["blocks"]) >= 1 and t.cost.calls > 0 for t in traces)


def test_controller_registry_builds_rlot(tmp_path):
    if "rlot" not in STRATEGIES:
        pytest.skip("the lead registers 'rlot' and 'fixed' in reasonkit.strategies.STRATEGIES")
    path = _biased_navigator(0).save(tmp_path / "n.safetensors")
    assert make_strategy("rlot", navigator=str(path)).name == "rlot"
    assert make_strategy("fixed", blocks="reason").name == "fixed:reason"


def test_navigator_states_are_the_self_evaluation(problems):
    nav = _biased_navigator(4)
    assert nav.act(np.zeros((3, 7))).tolist() == [4, 4, 4]
    traces = RLoT(navigator=nav).solve(problems[:3], ScriptedArithLM())
    assert all(t.meta["blocks"] == ["terminate"] and t.cost.calls == 2 for t in traces)  # evaluate, answer
