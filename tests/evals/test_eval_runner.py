"""`reasonkit eval` end to end with a tiny random model loaded by path, resume, concurrency, compare."""

from __future__ import annotations

import json

import pytest

from reasonkit.evals.report import compare_runs
from reasonkit.evals.runner import EvalConfig, eval_command, run_eval
from reasonkit.rundir import read_jsonl
from reasonkit.strategies import UNLIMITED
from reasonkit.types import Trace

QUICK = ["--max-new-tokens", "6", "--progress", "false"]


def untimed(record: dict) -> str:
    """A record without wall-clock seconds, which differ between two runs of the same thing."""
    for part in [record, *record["steps"]]:
        part["cost"].pop("seconds")
    return json.dumps(record, sort_keys=True)


def test_end_to_end_on_ten_problems_writes_every_report_file(data_dir, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--bench", "math500", "--data", str(data_dir), "--model", str(tiny_model_dir), "--strategy", "cot",
            "--limit", "10", "--out", str(out), *QUICK]  # fmt: skip
    assert eval_command(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "accuracy.png", "records.jsonl", "report.md", "run.json", "summary.json", "wall.json"
    ]  # fmt: skip
    records = read_jsonl(out / "records.jsonl")
    assert len(records) == 10 and len({r["problem_id"] for r in records}) == 10
    assert all(r["meta"]["level"] in range(1, 6) and r["meta"]["subject"] for r in records)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "n", "tokens_per_problem", "calls_per_problem", "wall_seconds", "breakdowns"):
        assert key in summary, key
    assert summary["n"] == 10 and summary["calls_per_problem"] == 1.0 and summary["tokens_per_problem"] > 0
    assert sum(g["n"] for g in summary["breakdowns"]["level"].values()) == 10
    assert set(summary["breakdowns"]) == {"subject", "level"}
    report = (out / "report.md").read_text()
    assert (
        "# math500 / cot" in report
        and "## Accuracy by level" in report
        and "![accuracy](accuracy.png)" in report
    )
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "math500 / cot: accuracy" in capsys.readouterr().out

    # a rerun resumes: nothing is regenerated or duplicated
    assert eval_command(argv) == 0
    assert [untimed(r) for r in read_jsonl(out / "records.jsonl")] == [untimed(r) for r in records]
    # a larger --limit extends the run; a smaller one is refused with the fix
    wider = [*argv[: argv.index("--limit")], "--limit", "12", *argv[argv.index("--limit") + 2 :]]
    assert eval_command(wider) == 0
    assert [r["problem_id"] for r in read_jsonl(out / "records.jsonl")][:10] == [
        r["problem_id"] for r in records
    ]
    assert json.loads((out / "summary.json").read_text())["n"] == 12
    narrower = [*argv[: argv.index("--limit")], "--limit", "5", *argv[argv.index("--limit") + 2 :]]
    with pytest.raises(ValueError, match="holds results for the first 12 problems, more than --limit 5"):
        eval_command(narrower)


class Interrupting:
    """A strategy that stops the run (as Ctrl-C would) when asked for its ``stop_at``-th batch."""

    def __init__(self, inner, stop_at: int) -> None:
        self.inner, self.stop_at, self.calls, self.name = inner, stop_at, 0, inner.name

    def solve(self, batch, backend, budget=UNLIMITED) -> list[Trace]:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.solve(batch, backend, budget)


def test_self_consistency_resume_and_sample_metrics(data_dir, tiny_model_dir, tmp_path):
    from reasonkit.backends.loading import load_backend
    from reasonkit.evals.loaders import load
    from reasonkit.evals.runner import build_strategy

    backend = load_backend(str(tiny_model_dir))
    config = EvalConfig(bench="gsm8k", data=str(data_dir), out=str(tmp_path / "full"), strategy="sc", n=4,
                        limit=6, batch_size=2, max_new_tokens=6, progress=False)  # fmt: skip
    problems = load("gsm8k", data_dir)[:6]
    full = run_eval(config, backend=backend)

    interrupted = EvalConfig(**{**vars(config), "out": str(tmp_path / "resumed")})
    with pytest.raises(KeyboardInterrupt):
        run_eval(interrupted, backend, Interrupting(build_strategy(interrupted, backend, problems), 2))
    assert len(read_jsonl(tmp_path / "resumed" / "records.jsonl")) == 2
    resumed = run_eval(interrupted, backend=backend)
    a = read_jsonl(tmp_path / "full" / "records.jsonl")
    b = read_jsonl(tmp_path / "resumed" / "records.jsonl")
    assert [r["problem_id"] for r in b] == [p.id for p in problems]
    assert [untimed(r) for r in b] == [untimed(r) for r in a]

    samples = full["samples"]
    assert samples["n_samples"] == 4 and set(samples) >= {"avg@4", "pass@1", "pass@2", "pass@4", "maj@4"}
    assert samples["maj@4"] == pytest.approx(full["accuracy"])  # sc's answer is the majority of its 4 samples
    assert samples["pass@1"] == pytest.approx(samples["avg@4"]) and samples["pass@4"] >= samples["pass@1"]
    assert resumed["samples"] == samples and resumed["n"] == full["n"] == 6


def test_http_concurrency_gives_the_same_records_as_sequential(data_dir, tiny_model_dir, tmp_path):
    from reasonkit.backends.hf import HFBackend
    from reasonkit.backends.server import start_server

    local = HFBackend(str(tiny_model_dir))
    runs = {}
    with start_server(local, max_batch_wait_ms=20) as server:
        for concurrency in (1, 4):
            out = tmp_path / f"c{concurrency}"
            argv = ["--bench", "amc23", "--data", str(data_dir), "--model", server.url, "--strategy", "direct",
                    "--limit", "8", "--concurrency", str(concurrency), "--out", str(out), *QUICK]  # fmt: skip
            assert eval_command(argv) == 0
            runs[concurrency] = [untimed(r) for r in read_jsonl(out / "records.jsonl")]
    assert len(runs[1]) == 8 and runs[1] == runs[4]


def test_compare_table(tmp_path, capsys):
    for name, bench, strategy, acc, n, tokens in [("a", "math500", "cot", 0.5, 500, 350.4),
                                                  ("b", "aime24", "cot", 0.1, 30, 303.0),
                                                  ("c", "math500", "sc8", 0.625, 500, 2799.6)]:  # fmt: skip
        (tmp_path / name).mkdir()
        summary = {"benchmark": bench, "strategy": strategy, "model": "m", "accuracy": acc, "n": n,
                   "tokens_per_problem": tokens}  # fmt: skip
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    table, figures = compare_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert table.splitlines() == [
        "accuracy (%) — model m",
        "",
        "| strategy | math500 | aime24 |",
        "|---|---:|---:|",
        "| cot | 50.0 (n=500) | 10.0 (n=30) |",
        "| sc8 | 62.5 (n=500) |  |",
        "",
        "tokens per problem (prompt + completion, all calls)",
        "",
        "| strategy | math500 | aime24 |",
        "|---|---:|---:|",
        "| cot | 350 | 303 |",
        "| sc8 | 2800 |  |",
    ]
    assert figures == {"math500": {"cot": 50.0, "sc8": 62.5}, "aime24": {"cot": 10.0}}
    assert (
        eval_command(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "t.md")])
        == 0
    )
    assert "| sc8 | 62.5 (n=500) |" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.png").is_file() and "| cot | 50.0 (n=500) |" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="not a finished eval run"):
        compare_runs([tmp_path / "missing"])
    with pytest.raises(ValueError, match="two runs of cot on math500"):
        compare_runs([tmp_path / "a", tmp_path / "a"])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--out", "x"], "give a benchmark"),
        (["--bench", "math500"], "give a run directory"),
        (["--bench", "math500", "--out", "x", "--strategy", "cot", "--n", "4"], "use --strategy sc"),
        (["--bench", "math500", "--out", "x", "--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_bad_flags_fail_before_any_work(argv, needle):
    with pytest.raises(ValueError, match=needle):
        eval_command(argv)


def test_unknown_strategies_are_clear(data_dir, tiny_model_dir, tmp_path):
    from reasonkit.backends.loading import load_backend

    backend = load_backend(str(tiny_model_dir))
    config = EvalConfig(bench="aime24", data=str(data_dir), out=str(tmp_path / "t"), strategy="tot")
    with pytest.raises(ValueError, match="unknown strategy 'tot'"):
        run_eval(config, backend=backend)
    assert not (tmp_path / "t").exists()  # nothing half-written


def test_limit_on_generated_arith_is_a_seeded_sample_spread_over_operation_counts():
    from reasonkit.evals.loaders import load
    from reasonkit.evals.runner import spread_order

    problems = load("arith", seed=0)
    assert [p.meta["n_ops"] for p in problems[:16]] == [1] * 16  # why a plain prefix will not do
    order = spread_order(problems, lambda p: p.meta["n_ops"], seed=0)
    assert sorted(p.id for p in order) == sorted(p.id for p in problems)  # a permutation
    assert [p.meta["n_ops"] for p in order[:16]] == [1, 2, 3, 4, 5, 6, 7, 8] * 2
    assert order == spread_order(problems, lambda p: p.meta["n_ops"], seed=0)  # seeded
    assert order[:8] != spread_order(problems, lambda p: p.meta["n_ops"], seed=1)[:8]
    # uneven groups: every group is used up, none is repeated
    uneven = spread_order(problems[:3] + problems[-1:], lambda p: p.meta["n_ops"], seed=0)
    assert [p.meta["n_ops"] for p in uneven] == [1, 8, 1, 1]


def test_field_map_flags_on_a_jsonl_file(tmp_path, tiny_model_dir):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"problem": "1+1", "solution": "2"}\n{"problem": "2+3", "solution": "5"}\n')
    config_argv = [
        "--bench",
        str(data),
        "--field",
        "question=problem",
        "--field",
        "answer=solution",
        "--kind",
        "int",
    ]
    from reasonkit.config import parse_config
    from reasonkit.evals.runner import _merge_repeated

    config = parse_config(EvalConfig, _merge_repeated([*config_argv, "--out", "o"], ("--field",)))
    assert config.load_options() == {"fields": {"question": "problem", "answer": "solution"}, "kind": "int"}
    bad = EvalConfig(bench=str(data), out="o", field_map=("question",))
    with pytest.raises(ValueError, match="--field takes name=file_field pairs"):
        bad.load_options()
    out = tmp_path / "run"
    assert (
        eval_command(
            [*config_argv, "--model", str(tiny_model_dir), "--strategy", "cot", "--out", str(out), *QUICK]
        )
        == 0
    )
    assert [r["problem_id"] for r in read_jsonl(out / "records.jsonl")] == ["mine-0", "mine-1"]


def test_cot_strategy_uses_benchmark_prompts(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "gsm"
    config = EvalConfig(bench="gsm8k", data=str(data_dir), out=str(out), model=str(tiny_model_dir), limit=2,
                        max_new_tokens=4, progress=False)  # fmt: skip
    run_eval(config)
    record = read_jsonl(out / "records.jsonl")[0]
    assert record["steps"][0]["prompt"].startswith(
        "user: Solve the following math problem efficiently and clearly."
    )
    assert record["cost"]["tokens_out"] <= 4  # --max-new-tokens reached the pack


def test_compact_pack_models_keep_their_pack(tiny_model_dir, tmp_path):
    from reasonkit.backends.hf import HFBackend

    compact = HFBackend(str(tiny_model_dir), prompt_pack="compact", name="tiny-compact")
    override = tmp_path / "p.yaml"
    override.write_text("calls: {}\n")
    config = EvalConfig(
        bench="arith", out=str(tmp_path / "a"), prompts=str(override), limit=3, progress=False
    )
    with pytest.raises(ValueError, match=r"--prompts applies to chat models .* speaks the 'compact' pack"):
        run_eval(config, backend=compact)
    config = EvalConfig(bench="arith", out=str(tmp_path / "b"), limit=3, max_new_tokens=4, progress=False)
    summary = run_eval(config, backend=compact)
    record = read_jsonl(tmp_path / "b" / "records.jsonl")[0]
    assert record["steps"][0]["prompt"].startswith("<q>") and summary["n"] == 3
    assert summary["model"] == "tiny-compact"


def test_a_method_strategy_brings_its_own_flags(tmp_path, capsys):
    # RLoT declares --navigator, FixedSequence --blocks: the eval command takes them only with their strategy
    out = tmp_path / "rlot"
    argv = ["--bench", "arith", "--limit", "3", "--strategy", "rlot", "--navigator", "builtin-arith",
            "--out", str(out), "--progress", "false"]  # fmt: skip
    assert eval_command(argv) == 0
    assert json.loads((out / "run.json").read_text())["navigator_sha256"]
    fixed = ["--bench", "arith", "--limit", "2", "--strategy", "fixed", "--blocks", "reason,reason",
             "--out", str(tmp_path / "fixed"), "--progress", "false"]  # fmt: skip
    assert eval_command(fixed) == 0
    assert json.loads((tmp_path / "fixed" / "run.json").read_text())["strategy"] == "fixed:reason,reason"
    with pytest.raises(SystemExit):
        eval_command(["--bench", "arith", "--out", str(tmp_path / "x"), "--navigator", "builtin-arith"])
    assert "--navigator is an option of --strategy rlot; add --strategy rlot" in capsys.readouterr().err
