"""The kernel benchmark runner: timing, ratios, the table, and append-only BENCHMARKS.md."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reasonkit.kernels import bench
from reasonkit.kernels.bench import BenchCase, RunSettings


def sleeper(seconds: float, calls: list[str], name: str):  # type: ignore[no-untyped-def]
    def run() -> None:
        calls.append(name)
        time.sleep(seconds)

    return run


def test_variants_are_timed_side_by_side_and_compared_with_the_baseline() -> None:
    calls: list[str] = []
    case = BenchCase(
        group="toy",
        name="fwd",
        sizes="n=1",
        variants={"slow": sleeper(0.02, calls, "slow"), "fast": sleeper(0.005, calls, "fast")},
        baseline="slow",
    )
    timings = bench.time_case(
        case, RunSettings(device="cpu", warmup=1, min_repeats=3, max_repeats=4, budget_s=0.05)
    )
    by_name = {t.variant: t for t in timings}
    assert by_name["slow"].median_s > 0.018 and by_name["fast"].median_s > 0.004  # sleeps only overshoot
    assert by_name["fast"].median_s < by_name["slow"].median_s
    assert 3 <= by_name["fast"].repeats <= 4
    # warm-up first, then rounds that interleave the variants
    assert calls[:2] == ["slow", "fast"] and calls[2:4] == ["slow", "fast"]
    rows = bench.format_table(timings)
    fast_row = next(r for r in rows if "| fast |" in r)
    ratio = float(fast_row.split("|")[6])
    assert ratio == pytest.approx(by_name["fast"].median_s / by_name["slow"].median_s, abs=1e-3)
    assert "(base)" in next(r for r in rows if "| slow" in r)


def test_a_variant_that_fails_is_reported_not_fatal() -> None:
    def broken() -> None:
        raise RuntimeError("out of memory")

    case = BenchCase("toy", "fwd", "n=1", {"ok": lambda: None, "broken": broken}, baseline="ok")
    timings = bench.time_case(case, RunSettings(device="cpu", min_repeats=1, max_repeats=1))
    assert any("failed: RuntimeError: out of memory" in r for r in bench.format_table(timings))


def test_one_slow_run_is_enough() -> None:
    calls: list[str] = []
    case = BenchCase("toy", "fwd", "n=1", {"slow": sleeper(0.03, calls, "slow")}, baseline="slow")
    (timing,) = bench.time_case(case, RunSettings(device="cpu", warmup=0, min_repeats=3, budget_s=0.01))
    assert timing.repeats == 1


def test_baseline_must_be_a_variant() -> None:
    with pytest.raises(ValueError, match="baseline 'c' is not one of the variants"):
        BenchCase("toy", "fwd", "n=1", {"a": lambda: None}, baseline="c")


def test_results_are_appended_with_a_header_once(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    rows = ["| group | case |", "|---|---|"]
    bench.append_results(out, rows, "cpu", "python -m reasonkit.kernels.bench --quick", ["shared machine"])
    first = out.read_text()
    bench.append_results(out, rows, "cpu", "python -m reasonkit.kernels.bench", [])
    text = out.read_text()
    assert text.startswith(first) and text.count("# Benchmarks") == 1 and text.count("## ") == 2
    assert "- command: `python -m reasonkit.kernels.bench --quick`" in text
    assert "- note: shared machine" in text and "torch " in text and "hardware: " in text


def test_cli_runs_the_gla_cases_without_writing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reasonkit.kernels.gla import benchmark

    tiny = BenchCase("gla", "fwd", "tiny", {"a": lambda: None, "b": lambda: None}, baseline="a")
    monkeypatch.setattr(benchmark, "bench_cases", lambda device, quick=False: [tiny])
    assert bench.main(["--device", "cpu", "--only", "gla", "--no-write", "--threads", "1"]) == 0
    assert "| gla | fwd | tiny | b |" in capsys.readouterr().out


def test_a_time_limit_stops_between_cases_and_says_which_were_left_out(capsys) -> None:
    calls: list[str] = []
    cases = [
        BenchCase("toy", f"case{i}", "n=1", {"v": sleeper(0.01, calls, f"case{i}")}, baseline="v")
        for i in range(3)
    ]
    settings = RunSettings(device="cpu", warmup=0, min_repeats=1, max_repeats=1)
    timings, notes = bench.run_cases(cases, settings, max_seconds=0.0)
    assert [t.case.name for t in timings] == ["case0"] and calls == ["case0"]  # the first case always runs
    assert notes == ["stopped after 1 of 3 cases (time limit 0 s); not run: toy case1 n=1, toy case2 n=1"]
    assert "| toy | case0 | n=1 | v (base) |" in capsys.readouterr().err  # its rows were shown at once
    timings, notes = bench.run_cases(cases, settings)
    assert [t.case.name for t in timings] == ["case0", "case1", "case2"] and notes == []
