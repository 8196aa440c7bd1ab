"""``reasonkit cola search`` end to end: tiny random Llama and GatedLM, the shipped model reproducing its
own recorded rewards, resuming, and the run directory's files."""

from __future__ import annotations

import json
from collections import defaultdict

import networkx as nx
import pytest
from test_scoring import tiny_gated_backend, tiny_llama_backend

from reasonkit.cola.grammar import read_path
from reasonkit.cola.records import read_records
from reasonkit.cola.scoring import PathScorer
from reasonkit.cola.search import SearchConfig, run_search, select_problems, tree_file
from reasonkit.rundir import read_jsonl


@pytest.mark.parametrize("make_backend", [tiny_llama_backend, tiny_gated_backend], ids=["llama", "gated_lm"])
def test_a_search_over_a_tiny_model_runs_end_to_end(make_backend, tmp_path):
    backend = make_backend()
    config = SearchConfig(out=str(tmp_path), limit=3, simulations=12, max_new_tokens=6, progress=False)
    summary = run_search(config, backend=backend)
    records = read_records(tmp_path / "searches.jsonl")
    assert summary["problems"] == 3 and len(records) == 3 and summary["layers"] == 4
    evaluations = read_jsonl(tmp_path / "evaluations.jsonl")
    scored = {(e["problem_id"], e["path"]) for e in evaluations}
    for record in records:
        assert record.simulations == 12 and read_path("0,1,2,3") in record.scored
        assert {(record.problem_id, ",".join(map(str, p))) for p in record.scored} <= scored
        tree = nx.read_graphml(tree_file(tmp_path, record.problem_id))
        assert int(tree.nodes["root"]["visits"]) == 12
    # one call per path per round, all three problems in the first one (left-padded: unlike lengths)
    metrics = read_jsonl(tmp_path / "metrics.jsonl")
    assert metrics[-1]["rows_decoded"] == len(evaluations) and metrics[0]["model_calls"] == 1
    for name in ("report.md", "summary.json", "pareto.png", "run.json"):
        assert (tmp_path / name).is_file()


def test_the_shipped_model_reproduces_its_recorded_rewards(builtin, tmp_path):
    config = SearchConfig(out=str(tmp_path), limit=3, call="direct", simulations=40, progress=False)
    run_search(config, backend=builtin)
    records = read_records(tmp_path / "searches.jsonl")
    # score every recorded (problem, path) again from scratch, path-major, and compare
    fresh = PathScorer(builtin, select_problems(config), call="direct")
    rows = {p.id: i for i, p in enumerate(fresh.problems)}
    by_path: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for record in records:
        for path in record.scored:
            by_path[path].append(rows[record.problem_id])
    fresh.score(fresh.default_path, list(rows.values()))
    for path, group in by_path.items():
        fresh.score(path, group)
    for record in records:
        for path, outcome in record.scored.items():
            again = fresh.cached(rows[record.problem_id], path)
            assert again is not None and (again.correct, again.tokens) == (outcome.correct, outcome.tokens)
    assert any(o.correct for r in records for o in r.scored.values())  # something to reproduce
    # and rerunning the command resumes: no model call, the same records
    before = (tmp_path / "searches.jsonl").read_text()
    summary = run_search(config, backend=builtin)
    assert (tmp_path / "searches.jsonl").read_text() == before
    assert summary["speed"]["sessions"] == 1  # nothing left to search: no new session of calls


def test_an_interrupted_search_replays_from_its_reward_table(builtin, tmp_path):
    config = SearchConfig(out=str(tmp_path / "a"), limit=2, call="direct", simulations=20, progress=False)
    run_search(config, backend=builtin)
    # keep the evaluations, lose the records (killed before any search finished): the rerun replays
    resumed = tmp_path / "b"
    resumed.mkdir()
    (resumed / "run.json").write_text((tmp_path / "a" / "run.json").read_text())
    (resumed / "evaluations.jsonl").write_text((tmp_path / "a" / "evaluations.jsonl").read_text())
    summary = run_search(SearchConfig(**{**config.__dict__, "out": str(resumed)}), backend=builtin)
    assert summary["speed"]["model_calls"] == 0
    replayed = sorted((resumed / "searches.jsonl").read_text().splitlines())  # all end in one round now
    assert replayed == sorted((tmp_path / "a" / "searches.jsonl").read_text().splitlines())


def test_bad_input_fails_with_the_fix(builtin, tmp_path):
    with pytest.raises(ValueError, match="--out"):
        SearchConfig()
    with pytest.raises(ValueError, match="KEY=VALUE"):
        SearchConfig(out="x", filter=("n_ops",))
    with pytest.raises(ValueError, match="--budget-factor"):
        SearchConfig(out="x", budget_factor=0)
    with pytest.raises(ValueError, match="simulations"):
        SearchConfig(out="x", simulations=0)
    with pytest.raises(ValueError, match="no problems"):
        run_search(SearchConfig(out=str(tmp_path), filter=("n_ops=99",)), backend=builtin)
    run_dir = tmp_path / "run"
    run_search(
        SearchConfig(out=str(run_dir), limit=1, call="direct", simulations=5, progress=False), backend=builtin
    )
    with pytest.raises(ValueError, match="different CoLa search"):
        run_search(SearchConfig(out=str(run_dir), limit=1, call="cot", simulations=5), backend=builtin)
    with (run_dir / "searches.jsonl").open("a") as handle:
        handle.write(json.dumps({"problem_id": "x"}) + "\n")
    with pytest.raises(ValueError, match="line 2: not a search record"):
        read_records(run_dir / "searches.jsonl")
