"""The experiment runners over a search run: the controls with the search's budget, MCTS recall against
exhaustive enumeration (hand-computed figures, then end to end on a tiny Llama), and the speed bench."""

from __future__ import annotations

import pytest
from test_scoring import tiny_llama_backend

from reasonkit.cola.records import SearchRecord, read_records
from reasonkit.cola.search import SearchConfig, run_search
from reasonkit.cola.table import Outcome, RewardTable
from reasonkit.evals.cola_controls import ControlsConfig, _summarize, random_order, run_controls
from reasonkit.evals.cola_recall import RecallConfig, run_recall, summarize_recall

DEFAULT = (0, 1, 2, 3)
RIGHT, WRONG = Outcome(True, "1", 3, "stop"), Outcome(False, "2", 3, "stop")


def record(pid: str, default_ok: bool, scored: dict[tuple[int, ...], bool]) -> SearchRecord:
    outcomes = {DEFAULT: RIGHT if default_ok else WRONG}
    outcomes.update({p: RIGHT if ok else WRONG for p, ok in scored.items()})
    return SearchRecord(pid, default_ok, 4, outcomes, 10, {})


RECORDS = [
    record("a", True, {(0, 1, 3): True}),  # right, a shorter correct path
    record("b", True, {(0, 1): False}),  # right, nothing shorter
    record("c", False, {(0, 0, 1, 2, 3): True}),  # wrong, fixed
    record("d", False, {(1, 2, 3): False, (3,): False}),  # wrong, not fixed
]


def test_the_controls_are_summarised_on_the_searchs_budget():
    budgets = [len(r.scored) for r in RECORDS]
    assert budgets == [2, 2, 2, 3]
    default = [RIGHT, RIGHT, WRONG, WRONG]
    random_correct = {0: [], 1: [(0, 2)], 2: [], 3: [(2, 3)]}  # d fixed by a random path, c not
    samples = [[RIGHT, WRONG], [RIGHT, RIGHT], [WRONG, RIGHT], [WRONG, WRONG, WRONG]]
    summary = _summarize(RECORDS, default, random_correct, samples, budgets, layers=4)
    mcts, rand, samp = summary["methods"].values()
    assert mcts["calls_per_problem"] == rand["calls_per_problem"] == samp["calls_per_problem"] == 2.25
    assert (mcts["oracle"]["k"], mcts["fixed_share"]["k"], mcts["shorter_share"]["k"]) == (3, 1, 1)
    assert (rand["oracle"]["k"], rand["fixed_share"]["k"], rand["shorter_share"]["k"]) == (3, 1, 1)
    assert (samp["oracle"]["k"], samp["fixed_share"]["k"], samp["shorter_share"]) == (3, 1, None)
    assert summary["paired"] == {
        "wrong fixed by MCTS only, vs random": 1,
        "wrong fixed by random only, vs MCTS": 1,
        "wrong fixed by MCTS only, vs sampling": 0,
        "wrong fixed by sampling only, vs MCTS": 0,
    }
    assert "does not beat random paths at fixing wrong answers (0.500 vs 0.500)" in summary["verdict"]


def test_recall_is_computed_against_the_exhaustive_table():
    paths = [DEFAULT, (0, 1, 3), (0, 1), (0, 0, 1, 2, 3), (1, 2, 3), (3,), (2,)]
    truth = {  # per problem, the paths that are correct (the rest wrong)
        "a": {DEFAULT, (0, 1, 3), (2,)},  # shortest correct: 1 layer; MCTS found 3 layers
        "b": {DEFAULT},  # MCTS found the shortest (the default)
        "c": {(0, 0, 1, 2, 3)},  # found, and it is the only one
        "d": {(0, 1)},  # solvable, MCTS missed it
    }
    exhaustive = [{p: RIGHT if p in truth[r.problem_id] else WRONG for p in paths} for r in RECORDS]
    summary = summarize_recall(RECORDS, exhaustive, layers=4)
    assert (summary["found_any"]["k"], summary["found_any"]["n"]) == (3, 4)
    assert summary["found_shortest"]["k"] == 2
    assert summary["mean_excess_layers"] == round((2 + 0 + 0) / 3, 3)
    assert summary["exhaustive"]["shorter_share"]["k"] == 1 and summary["mcts"]["shorter_share"]["k"] == 1
    assert summary["exhaustive"]["fixed_share"]["k"] == 2 and summary["mcts"]["fixed_share"]["k"] == 1
    assert [p["correct_paths"] for p in summary["per_problem"]] == [3, 1, 1, 1]


def test_the_random_order_covers_the_grammar_without_the_default_path():
    from reasonkit.cola.grammar import LayerGrammar

    grammar = LayerGrammar(4, ops=("skip", "keep"))
    order = random_order(grammar, seed=1)
    assert sorted(order) == sorted(p for p in grammar.enumerate_paths() if p != DEFAULT)
    assert order == random_order(grammar, seed=1) != random_order(grammar, seed=2)


def test_controls_and_recall_run_end_to_end_on_a_tiny_model(tmp_path):
    backend = tiny_llama_backend()
    config = SearchConfig(
        out=str(tmp_path), limit=3, simulations=10, max_new_tokens=4, moves="skip", progress=False
    )
    run_search(config, backend=backend)
    records = read_records(tmp_path / "searches.jsonl")
    controls = run_controls(ControlsConfig(run=str(tmp_path), problems=2, progress=False), backend=backend)
    assert controls["problems"] == 2
    expected = round(sum(len(r.scored) for r in records[:2]) / 2, 2)
    assert all(m["calls_per_problem"] == expected for m in controls["methods"].values())
    order = random_order(config.grammar(4), seed=0)
    table = RewardTable(tmp_path / "evaluations.jsonl")
    for r in records[:2]:  # the random-path control scored the shared order's first K - 1 paths
        assert all(table.get(r.problem_id, p) is not None for p in order[: len(r.scored) - 1])
    assert all(table.get(records[2].problem_id, p) is None for p in order if p not in records[2].scored)
    table.close()

    recall = run_recall(RecallConfig(run=str(tmp_path), problems=3, progress=False), backend=backend)
    assert recall["paths"] == 15 and recall["problems"] == 3  # every skip-only path of 4 layers
    table = RewardTable(tmp_path / "evaluations.jsonl")
    for r in records:  # the exhaustive table agrees with every outcome the search recorded
        everything = table.of_problem(r.problem_id)
        assert len(everything) == 15
        assert all(everything[p].correct == o.correct for p, o in r.scored.items())
    table.close()
    report = (tmp_path / "report.md").read_text()
    assert "Controls with the same number of model calls" in report and "MCTS recall" in report
    with pytest.raises(ValueError, match="fewer than --problems"):
        run_recall(RecallConfig(run=str(tmp_path), problems=4, progress=False), backend=backend)


@pytest.mark.slow
def test_the_speed_bench_runs_the_same_searches_three_ways():
    from reasonkit.evals.bench_cola import BenchColaConfig, run_bench

    table = run_bench(BenchColaConfig(problems=2, simulations=12, call="direct"))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "setting" not in line]
    assert len(rows) == 3 and all(line.rstrip().endswith("| 2/2 |") for line in rows)
