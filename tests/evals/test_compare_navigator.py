"""The comparison table: strategies on held-out problems, Wilson intervals, block histogram."""

from __future__ import annotations

import json
import re

import pytest
import torch
from navigator_helpers import ScriptedArithLM

from reasonkit.controller import RunDirError
from reasonkit.evals.compare_navigator import CompareConfig, compare, navigator_slug, wilson
from reasonkit.navigators.navigator import Navigator
from reasonkit.navigators.network import DuelingQNet
from reasonkit.tasks import arith


def test_wilson_interval_against_a_hand_computation():
    # 3 of 24: p = 0.125, centre 0.17674, half-width 0.13330 (z = 1.96)
    low, high = wilson(3, 24)
    assert (low, high) == (pytest.approx(0.04344, abs=1e-4), pytest.approx(0.31004, abs=1e-4))
    assert wilson(0, 0) == (0.0, 1.0)


def test_compare_runs_every_strategy_on_the_test_split(tmp_path):
    net = DuelingQNet()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.advantage[2].bias[1] = 1.0  # always decompose
    path = Navigator(net, {"model": "m", "task": "arith", "reward": "outcome", "episodes": "1"}).save(
        tmp_path / "nav.safetensors"
    )
    config = CompareConfig(navigator=str(path), per_ops=2, out=str(tmp_path / "cmp"), progress=False,
                           fixed=("reason,reason",))  # fmt: skip
    rows = compare(config, backend=ScriptedArithLM())
    names = [r["strategy"] for r in rows]
    assert names == ["direct", "cot", "cot-sc5", "fixed[reason,reason]", "rlot"]
    test_ids = {p.id for p in arith.benchmark("test", per_ops=2, seed=0)}
    for name in ("direct", f"rlot-{navigator_slug(str(path))}"):
        lines = (tmp_path / "cmp" / name / "records.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert {r["problem_id"] for r in records} == test_ids  # held-out problems only
    rlot = rows[-1]
    assert set(rlot["blocks"]) == {"decompose"} and rlot["blocks"]["decompose"] >= rlot["n"]
    assert rlot["accuracy"] == 1.0
    assert rows[0]["accuracy"] < 0.5 and rows[0]["accuracy_by_ops"][1] == 1.0  # direct only solves 1 op
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "| rlot | 1.000 |" in table and f"decompose {rlot['blocks']['decompose']} (100%)" in table
    assert (tmp_path / "cmp" / "blocks.png").read_bytes()[:4] == b"\x89PNG"
    # accuracy by block sequence and the transition graph of the navigator's own run
    seqs = rlot["sequences"]
    assert sum(r["n"] for r in seqs) == rlot["n"] and all(r["accuracy"] == 1.0 for r in seqs)
    assert all(set(r["sequence"].split(",")) <= {"decompose", "terminate"} for r in seqs)
    top = seqs[0]
    assert f"| {top['sequence']} | {top['n']} | {top['n'] / rlot['n']:.1%} | 1.000 |" in table
    nav_dir = tmp_path / "cmp" / f"rlot-{navigator_slug(str(path))}"
    assert (nav_dir / "policy.png").read_bytes()[:4] == b"\x89PNG"
    assert "1:decompose" in (nav_dir / "policy.graphml").read_text()


def _constant_navigator(path, action: int) -> str:
    net = DuelingQNet()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.advantage[2].bias[action] = 1.0
    meta = {"model": "m", "task": "arith", "reward": "outcome", "episodes": "1"}
    return str(Navigator(net, meta).save(path))


def test_another_navigator_reuses_the_baselines(tmp_path):
    first = _constant_navigator(tmp_path / "a" / "navigator.safetensors", 1)  # always decompose
    second = _constant_navigator(tmp_path / "b" / "navigator.safetensors", 4)  # always terminate
    assert navigator_slug(first) == "a-navigator" and navigator_slug("builtin-arith") == "builtin-arith"
    common = dict(per_ops=2, out=str(tmp_path / "cmp"), progress=False, fixed=("reason,reason",))
    rows_a = compare(CompareConfig(navigator=first, **common), backend=ScriptedArithLM())
    lm = ScriptedArithLM()
    rows_b = compare(CompareConfig(navigator=second, **common), backend=lm)
    assert rows_a[:-1] == rows_b[:-1]  # the same baseline rows, read back from their run directories
    n = rows_b[-1]["n"]
    assert lm.calls == 2 * n  # only the new navigator ran: a self-evaluation and terminate per problem
    assert rows_b[-1]["blocks"] == {"terminate": n}
    assert sorted(p.name for p in (tmp_path / "cmp").glob("rlot-*")) == [
        "rlot-a-navigator",
        "rlot-b-navigator",
    ]


def test_a_changed_navigator_file_is_not_mixed_with_old_records(tmp_path):
    path = tmp_path / "nav" / "navigator.safetensors"
    common = dict(per_ops=1, out=str(tmp_path / "cmp"), progress=False, fixed=("reason",))
    _constant_navigator(path, 1)
    compare(CompareConfig(navigator=str(path), **common), backend=ScriptedArithLM())
    _constant_navigator(path, 4)  # same file name, other weights
    with pytest.raises(RunDirError, match="navigator_sha256"):
        compare(CompareConfig(navigator=str(path), **common), backend=ScriptedArithLM())


def test_arith_hard_is_another_split_of_the_same_task():
    from reasonkit.evals.compare_navigator import heldout_problems

    hard = heldout_problems(CompareConfig(task="arith-hard", per_ops=3, progress=False))
    plain = heldout_problems(CompareConfig(task="arith", per_ops=3, progress=False))
    assert len(hard) == len(plain) == 24 and not {p.id for p in hard} & {p.id for p in plain}
    assert all(p.kind == "arith" for p in hard)
    assert [p.meta["n_ops"] for p in hard] == [p.meta["n_ops"] for p in plain]  # same operation counts
    assert max(len(n) for p in hard for n in re.findall(r"\d+", p.question)) == 4  # 4-digit operands
    assert max(len(n) for p in plain for n in re.findall(r"\d+", p.question)) < 4
    with pytest.raises(ValueError, match="unknown problem set"):
        arith.problem_config("arith-impossible")
