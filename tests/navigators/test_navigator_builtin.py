"""The navigator machinery on the shipped built-in model and the shipped preset (skipped without them)."""

from __future__ import annotations

import pytest

from reasonkit.backends.loading import BUILTIN_DIR
from reasonkit.navigators.presets import PRESETS

pytestmark = pytest.mark.skipif(
    not (BUILTIN_DIR / "config.json").is_file(), reason="the built-in model is not in this checkout yet"
)


@pytest.fixture(scope="module")
def builtin():
    from reasonkit.backends.loading import load_backend

    return load_backend("builtin")


def test_preset_runs_on_the_builtin_model(builtin):
    if "builtin-arith" not in PRESETS:
        pytest.skip("the builtin-arith preset is not shipped yet")
    from reasonkit.navigators.strategy import RLoT
    from reasonkit.tasks import arith

    problems = arith.benchmark("test", per_ops=1, seed=0)[:4]
    traces = RLoT("builtin-arith").solve(problems, builtin)
    assert [t.problem_id for t in traces] == [p.id for p in problems]
    assert all(t.meta["blocks"] and t.correct is not None and t.cost.calls >= 2 for t in traces)


@pytest.mark.slow
def test_train_navigator_on_the_builtin_model(tmp_path):
    from reasonkit.navigators.navigator import Navigator
    from reasonkit.navigators.train import TrainNavigatorConfig, train_navigator

    config = TrainNavigatorConfig(episodes=40, eval_every=20, train_problems=60, eval_problems=20,
                                  n_envs=10, buffer_size=60, batch_size=16, out=str(tmp_path / "run"),
                                  progress=False)  # fmt: skip
    result = train_navigator(config)
    nav = Navigator.load(result.navigator_path)
    assert nav.metadata["model"] == "builtin" and nav.metadata["episodes"] == "40"
    assert 0.0 <= result.summary["validation_accuracy"] <= 1.0


def test_terminate_after_a_long_history_stays_inside_the_context_without_a_warning(builtin):
    """terminate's budget (360 tokens) after five steps of an 8-operation problem passes the model's
    512 positions: the backend caps the rows at the context instead of warning about the budget, and
    the outputs are those of the uncapped model (every row ends its line well before the limit)."""
    import warnings

    from reasonkit.backends.loading import load_backend
    from reasonkit.packs import load_pack
    from reasonkit.tasks import arith
    from reasonkit.tasks.arith.expr import parse
    from reasonkit.tasks.arith.steps import gold_steps

    pack = load_pack(builtin.prompt_pack)
    problems = [p for p in arith.benchmark("validation", per_ops=4) if p.meta["n_ops"] == 8]
    prompts = [pack.terminate(p, gold_steps(parse(p.question))[:5]) for p in problems]
    params = pack.sampling("terminate", "arith")
    assert params.max_new_tokens == 360
    assert all(
        len(builtin.encode(p)) + params.max_new_tokens > builtin.context_length == 512 for p in prompts
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = builtin.generate(prompts, params)
    uncapped = load_backend("builtin")
    uncapped.context_length = None  # the reference: the model left to run past its context
    assert got == uncapped.generate(prompts, params)
    assert all(c.tokens_in + c.tokens_out <= 512 and c.finish_reason == "stop" for [c] in got)


@pytest.mark.slow
def test_train_navigator_on_the_builtin_model_is_bit_identical_run_to_run(tmp_path):
    """The same command twice, in separate run directories and processes (different hash seeds):
    the same episodes, and navigators with identical tensors. This is the reproducibility that
    BENCHMARKS.md claims for `make demo` (same machine and software; other CPUs round differently)."""
    import os
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    # Small and shallow (two blocks at most) to keep the test short; learning starts after 4 steps.
    flags = ["--episodes", "30", "--eval-every", "30", "--train-problems", "30", "--eval-problems", "10",
             "--n-envs", "10", "--buffer-size", "40", "--batch-size", "16", "--max-depth", "2",
             "--fixed-baselines", "--progress", "false"]  # fmt: skip
    runs = [tmp_path / "first", tmp_path / "second"]
    for run, hash_seed in zip(runs, ("1", "2")):
        subprocess.run(
            [sys.executable, "-m", "reasonkit.navigators.train", *flags, "--out", str(run)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            check=True,
            capture_output=True,
            timeout=900,
        )
    first, second = (load_file(run / "navigator.safetensors") for run in runs)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert (runs[0] / "episodes.jsonl").read_text() == (runs[1] / "episodes.jsonl").read_text()
    last = [line for line in (runs[0] / "metrics.jsonl").read_text().splitlines()][-1]
    assert '"episode": 30' in last and '"updates": 0,' not in last  # it did train
