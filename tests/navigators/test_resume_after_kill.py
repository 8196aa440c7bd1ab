"""train-navigator killed with SIGKILL at five moments, then rerun: the finished run equals an
uninterrupted one (counters, every episode row, the navigator's weights).

Each leg is a real subprocess killed by the operating system; the scripted arith model keeps the
legs fast (the built-in model's version of determinism is the slow test in
test_navigator_builtin.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from reasonkit.navigators.navigator import Navigator

TESTS = Path(__file__).resolve().parents[1]
SETTINGS = dict(
    model="scripted-arith", episodes=40, eval_every=10, train_problems=30, eval_problems=5,
    n_envs=10, buffer_size=100, batch_size=16, progress=False, hard_only=False, threads=1,
)  # fmt: skip
LEG = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from navigator_helpers import ScriptedArithLM
from reasonkit.navigators.train import TrainNavigatorConfig, train_navigator
settings = {SETTINGS!r}
train_navigator(TrainNavigatorConfig(**settings, out=sys.argv[1]), backend=ScriptedArithLM())
"""


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def untimed(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in metrics]


def start_leg(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-c", LEG, str(out)], env=env, stderr=subprocess.PIPE, text=True)


def kill_when(out: Path, condition: Callable[[], bool], timeout: float = 120) -> None:
    leg = start_leg(out)
    deadline = time.monotonic() + timeout
    while not condition():
        assert leg.poll() is None, (
            f"the leg ended before its kill moment:\n{leg.stderr.read() if leg.stderr else ''}"
        )
        assert time.monotonic() < deadline, "the kill moment never came"
        time.sleep(0.002)
    os.kill(leg.pid, signal.SIGKILL)
    leg.wait()
    assert leg.returncode == -signal.SIGKILL


def test_a_run_killed_at_five_moments_finishes_as_an_uninterrupted_one(tmp_path):
    reference = tmp_path / "ref"  # uninterrupted, in a process like the legs'
    assert start_leg(reference).wait(timeout=300) == 0
    out = tmp_path / "killed"
    navigator = out / "navigator.safetensors"

    def navigator_rewritten() -> Callable[[], bool]:
        before = navigator.stat().st_mtime_ns if navigator.exists() else 0
        return lambda: navigator.exists() and navigator.stat().st_mtime_ns != before

    moments = [
        lambda: (out / "run.json").exists(),  # before the first checkpoint (the issue: "first 45 s")
        lambda: len(rows(out / "metrics.jsonl")) >= 1,  # right after checkpoint 0
        lambda: len(rows(out / "episodes.jsonl")) >= 13,  # between checkpoints
        navigator_rewritten(),  # inside a checkpoint: navigator written, state.json not yet
        lambda: (
            (out / "state.json").exists() and json.loads((out / "state.json").read_text())["episodes"] >= 30
        ),
    ]
    for i, moment in enumerate(moments):
        if i == 3:
            moment = navigator_rewritten()  # armed when this leg starts
        kill_when(out, moment)
    leg = start_leg(out)
    assert leg.wait(timeout=300) == 0, leg.stderr.read() if leg.stderr else ""

    assert untimed(rows(out / "metrics.jsonl")) == untimed(rows(reference / "metrics.jsonl"))
    assert rows(out / "episodes.jsonl") == rows(reference / "episodes.jsonl")
    assert (
        Navigator.load(navigator).fingerprint
        == Navigator.load(reference / "navigator.safetensors").fingerprint
    )
    state, uninterrupted = (json.loads((d / "state.json").read_text()) for d in (out, reference))
    assert state["finished"] and state["episodes"] == 40 and uninterrupted["legs"] == 1
    assert state["legs"] >= 3  # legs that reached a commit (a leg killed before its first one leaves none)
    assert state["last"]["env_steps"] == uninterrupted["last"]["env_steps"] > 0
