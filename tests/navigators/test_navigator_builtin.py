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
