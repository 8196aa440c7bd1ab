"""Training: a short run learns, `train-navigator` writes a resumable run directory, bad input fails."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from navigator_helpers import ScriptedArithLM
from payloads import plant
from safetensors.torch import load_file

from reasonkit.config import ConfigError
from reasonkit.kit import CoT, Direct
from reasonkit.navigators.dqn import DuelingDoubleDQN
from reasonkit.navigators.env import ThoughtEnv, ThoughtVecEnv
from reasonkit.navigators.monitor import TrainingMonitor
from reasonkit.navigators.navigator import Navigator
from reasonkit.navigators.problems import load_task
from reasonkit.navigators.strategy import FixedSequence
from reasonkit.navigators.train import (
    TrainNavigatorConfig,
    summary_text,
    train_navigator,
    train_navigator_command,
)
from reasonkit.navigators.training_run import RunDirError, TrainingRun
from reasonkit.packs import load_pack
from reasonkit.tasks import arith


def _accuracy(env: ThoughtEnv, n: int, choose) -> float:
    correct = 0
    for i in range(n):
        obs, _ = env.reset(options={"problem_index": i})
        while True:
            obs, _, done, _, info = env.step(choose(obs))
            if done:
                correct += info["correct"]
                break
    return correct / n


def test_short_training_run_beats_a_random_policy():
    """Tiny deterministic task: 6-8 operations, depth limit 5, answers right only with <= 1 op left.

    Terminating early is wrong and reasoning one op per step cannot finish in time: only a policy
    that avoids terminate and prefers decompose (several operations per step) solves these.
    """
    lm = ScriptedArithLM(answer_ops=1)
    train = arith.generate(40, split="train", seed=0, n_ops=[6, 7, 8])
    test = arith.generate(30, split="validation", seed=0, n_ops=[6, 7, 8])
    env = ThoughtVecEnv(train, lm, n_envs=10, seed=0, reward="self-eval")
    model = DuelingDoubleDQN(env=env, seed=0, buffer_size=200, exploration_decay=0.997)
    model.learn(total_timesteps=1800)
    evaluation = ThoughtEnv(test, lm)
    rng = np.random.default_rng(0)
    random_acc = _accuracy(evaluation, len(test), lambda obs: int(rng.integers(5)))
    learned_acc = _accuracy(evaluation, len(test), lambda obs: int(model.predict(obs, deterministic=True)[0]))
    assert learned_acc >= random_acc + 0.3, (learned_acc, random_acc)


def _config(tmp_path, **overrides) -> TrainNavigatorConfig:
    values = dict(
        model="scripted-arith", episodes=60, eval_every=30, train_problems=40, eval_problems=20,
        n_envs=10, buffer_size=100, batch_size=16, out=str(tmp_path / "run"), progress=False, hard_only=True,
    )  # fmt: skip
    return TrainNavigatorConfig(**{**values, **overrides})


def test_train_navigator_writes_a_resumable_run_directory(tmp_path):
    lm = ScriptedArithLM()
    result = train_navigator(_config(tmp_path), backend=lm)
    run = result.out_dir
    for name in ("run.json", "state.json", "summary.json", "metrics.jsonl", "episodes.jsonl",
                 "learning_curve.png", "navigator.safetensors", "navigator-best.safetensors",
                 "cache.sqlite"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not list(run.glob("*.pkl")) and not list(run.glob("*.zip"))  # nothing a resume would unpickle
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["episode"] for m in metrics] == [0, 30, 60]
    episodes = [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]
    assert [e["episode"] for e in episodes] == list(range(1, 61))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["episodes"] == 60 and 0 <= summary["validation_accuracy"] <= 1
    assert summary["train_problems_used"] < summary["train_problems_drawn"]  # hard-only dropped some
    nav = Navigator.load(result.navigator_path)
    assert nav.metadata["model"] == "scripted-arith" and nav.metadata["episodes"] == "60"
    assert nav.metadata["task"] == "arith" and nav.metadata["reward"] == "outcome"  # the default
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The same command again: nothing to do, no backend call.
    calls = lm.calls
    again = train_navigator(_config(tmp_path), backend=lm)
    assert again.summary["episodes"] == 60 and lm.calls == calls
    # More episodes: replays the 60 from the cache (no model call) and trains on, exactly as a 90-episode
    # run from scratch would.
    calls = lm.calls
    more = train_navigator(_config(tmp_path, episodes=90), backend=lm)
    straight = train_navigator(_config(tmp_path / "straight", episodes=90), backend=ScriptedArithLM())
    assert (run / "episodes.jsonl").read_text() == (straight.out_dir / "episodes.jsonl").read_text()
    assert (
        Navigator.load(more.navigator_path).fingerprint == Navigator.load(straight.navigator_path).fingerprint
    )
    assert lm.calls > calls  # episodes 61..90 needed the model
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["episode"] for m in metrics] == [0, 30, 60, 90] and more.summary["episodes"] == 90
    assert (
        metrics[-1]["env_steps"] > metrics[2]["env_steps"] and metrics[-1]["updates"] > metrics[2]["updates"]
    )
    episodes = [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]
    assert [e["episode"] for e in episodes] == list(range(1, 91))


def _reference(strategy, problems) -> tuple[float, float]:
    """Accuracy and tokens per problem of ``strategy`` on ``problems``, computed apart from training."""
    traces = strategy.solve(problems, ScriptedArithLM())
    n = len(traces)
    return sum(bool(t.correct) for t in traces) / n, sum(t.cost.tokens for t in traces) / n


def test_cot_and_the_best_fixed_sequence_are_reported_next_to_the_navigator(tmp_path):
    config = _config(tmp_path, fixed_baselines=("reason,reason,reason,reason,reason", "decompose,decompose"))
    result = train_navigator(config, backend=ScriptedArithLM())
    validation = load_task("arith", "validation", config.eval_problems, seed=config.seed)
    cot, direct = _reference(CoT(), validation), _reference(Direct(), validation)
    reason5 = _reference(FixedSequence("reason,reason,reason,reason,reason"), validation)
    decompose2 = _reference(FixedSequence("decompose,decompose"), validation)
    assert cot != direct and reason5 != decompose2  # distinct figures: a mix-up cannot pass

    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert (summary["validation_cot_accuracy"], summary["validation_cot_tokens_per_problem"]) == cot
    assert (summary["validation_direct_accuracy"], summary["validation_direct_tokens_per_problem"]) == direct
    best = max([("reason ×5", reason5), ("decompose ×2", decompose2)], key=lambda x: (x[1][0], -x[1][1]))
    fixed = summary["validation_best_fixed"]
    assert (fixed["label"], (fixed["accuracy"], fixed["tokens_per_problem"])) == best
    assert set(summary["validation_baselines"]) == {
        "direct", "cot", "fixed:reason,reason,reason,reason,reason", "fixed:decompose,decompose",
    }  # fmt: skip

    text = summary_text(summary)
    assert f"CoT {cot[0]:.3f} ({cot[1]:.0f} tokens)" in text
    assert f"direct prompt {direct[0]:.3f} ({direct[1]:.0f} tokens)" in text
    assert f"best fixed sequence ({best[0]}) {best[1][0]:.3f}" in text

    # The learning curve draws CoT, Direct and the best fixed sequence as flat lines across the episodes.
    state = json.loads((result.out_dir / "state.json").read_text())
    series = TrainingRun(result.out_dir).plot(state["baselines"])
    assert series[f"CoT: {cot[0]:.2f} ({cot[1]:.0f} tokens/problem)"] == ([0, 30, 60], [cot[0]] * 3)
    assert series[f"direct prompt: {direct[0]:.2f} ({direct[1]:.0f} tokens/problem)"][1] == [direct[0]] * 3
    fixed_label = f"best fixed sequence {best[0]}: {best[1][0]:.2f} ({best[1][1]:.0f} tokens/problem)"
    assert series[fixed_label][1] == [best[1][0]] * 3


class RecordingArithLM(ScriptedArithLM):
    """The scripted model, recording every (prompt, max_new_tokens) it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, int]] = []

    def generate(self, prompts, params):
        self.requests.extend((p, params.max_new_tokens) for p in prompts)
        return super().generate(prompts, params)


def test_resuming_measures_no_baseline_twice(tmp_path):
    # No cache: a baseline measured again would reach the model.
    first = RecordingArithLM()
    train_navigator(_config(tmp_path, episodes=30, cache=False), backend=first)
    validation = load_task("arith", "validation", 20, seed=0)
    pack = load_pack("compact")
    baseline_prompts = {pack.cot(p) for p in validation} | {pack.direct(p) for p in validation}
    assert baseline_prompts <= {prompt for prompt, _ in first.requests}
    before = json.loads((tmp_path / "run" / "state.json").read_text())["baselines"]
    assert set(before) == {"direct", "cot"}  # no fixed sequence unless asked for

    again = RecordingArithLM()
    more = ("reason,reason,reason,reason,reason", "decompose")
    train_navigator(_config(tmp_path, episodes=60, cache=False, fixed_baselines=more), backend=again)
    assert again.requests and not baseline_prompts & {prompt for prompt, _ in again.requests}
    after = json.loads((tmp_path / "run" / "state.json").read_text())["baselines"]
    assert {k: v for k, v in after.items() if k in before} == before  # kept as measured, seconds included
    assert set(after) - set(before) == {"fixed:reason,reason,reason,reason,reason", "fixed:decompose"}


def test_the_bar_advances_once_per_env_step_by_the_episodes_it_finished(capsys):
    """The ETA's first rate is the first step's episodes over its time: ten here, not one.

    Advancing the bar once per finished episode let tqdm draw after the first of them and estimate
    the rest of the run at one episode per step (the 7-hour ETA of issue 10).
    """
    checkpoints = []
    monitor = TrainingMonitor(
        total=100, done_before=0, eval_every=15, progress=True,
        checkpoint=lambda episodes, rows, success: checkpoints.append(episodes) or {"accuracy": 0.5},
    )  # fmt: skip
    env = ThoughtVecEnv(arith.generate(5, split="train", seed=0), ScriptedArithLM(), n_envs=2, seed=0)
    monitor.init_callback(DuelingDoubleDQN(env=env, seed=0, buffer_size=10))
    monitor._on_training_start()
    monitor.bar.mininterval = monitor.bar.miniters = 0  # draw at every update
    monitor.bar.dynamic_miniters = False
    infos = [{"problem_id": str(i), "correct": True, "blocks": ["terminate"]} for i in range(50)]
    dones = [i % 5 == 0 for i in range(50)]  # 10 of 50 parallel episodes end in each step
    for _ in range(3):
        monitor.update_locals({"infos": infos, "dones": dones})
        assert monitor._on_step()
    monitor._on_training_end()
    shown = [int(n) for n in re.findall(r"(\d+)/100", capsys.readouterr().err)]
    # Episode 15 (a checkpoint) falls inside the second step: the bar shows it before evaluating.
    assert sorted(set(shown)) == [0, 10, 15, 20, 30] and checkpoints == [15, 30]


def test_two_runs_of_the_same_config_write_identical_navigators(tmp_path):
    """Run to run, the same config gives the same episodes and bit-identical weights (the built-in
    model's version of this check is the slow test in test_navigator_builtin.py)."""
    runs = [train_navigator(_config(tmp_path / name), backend=ScriptedArithLM()).out_dir for name in "ab"]
    first, second = (load_file(run / "navigator.safetensors") for run in runs)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert (runs[0] / "episodes.jsonl").read_text() == (runs[1] / "episodes.jsonl").read_text()
    assert json.loads((runs[0] / "state.json").read_text())["last"]["updates"] > 0


def test_interrupted_checkpoint_rows_are_dropped_on_resume(tmp_path):
    lm = ScriptedArithLM()
    train_navigator(_config(tmp_path, episodes=30), backend=lm)
    run = tmp_path / "run"
    with (run / "episodes.jsonl").open("a") as handle:  # rows written after the last commit
        handle.write(json.dumps({"episode": 31}) + "\n")
    state = json.loads((run / "state.json").read_text())
    state["finished"] = False
    (run / "state.json").write_text(json.dumps(state))
    train_navigator(_config(tmp_path, episodes=60), backend=lm)
    episodes = [json.loads(line)["episode"] for line in (run / "episodes.jsonl").read_text().splitlines()]
    assert episodes == list(range(1, 61))


def test_a_different_run_in_the_same_directory_is_refused(tmp_path):
    train_navigator(_config(tmp_path, episodes=30), backend=ScriptedArithLM())
    with pytest.raises(RunDirError, match=r"different training run .*reward"):
        train_navigator(_config(tmp_path, episodes=30, reward="self-eval"), backend=ScriptedArithLM())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--reward", "likes"], "--reward must be one of"),
        (["--reward", "prm"], "needs --prm"),
        (["--episodes", "0"], "--episodes must be >= 1"),
        (["--task", ""], "--task is empty"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--fixed-baselines", "reason,think"], "not a comma-separated list of blocks"),
        (["--fixed-baselines", "reason,terminate"], "not a comma-separated list of blocks"),
    ],
)
def test_bad_flags_fail_with_one_clear_message(argv, message):
    with pytest.raises(ConfigError, match=message):
        train_navigator_command(argv)


def test_unknown_task_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"unknown task 'nosuchbench'|needs reasonkit\.evals\.load"):
        train_navigator(_config(tmp_path, task="nosuchbench"), backend=ScriptedArithLM())
    with pytest.raises(ValueError, match="does not exist"):
        train_navigator(_config(tmp_path, task=str(tmp_path / "missing.jsonl")), backend=ScriptedArithLM())
    assert not (tmp_path / "run").exists()


def test_help_says_how_to_train_for_a_real_model(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_navigator_command(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--model", "--task", "--reward", "--episodes", "--hard-only", "--out", "Qwen", "math500",
                   "--prm", "openai:http"):  # fmt: skip
        assert needle in text, needle


def test_resuming_never_loads_code_from_the_run_directory(tmp_path):
    # the files an older version unpickled on resume (SB3's checkpoint.zip, replay.pkl) hold payloads
    # that would create `sentinel`; a resume and a continuation run without touching them
    train_navigator(_config(tmp_path, episodes=30), backend=ScriptedArithLM())
    run, sentinel = tmp_path / "run", tmp_path / "executed"
    for name in ("checkpoint.zip", "replay.pkl", "checkpoint.tmp.zip", "replay.tmp.pkl"):
        plant(run / name, sentinel)
    state = json.loads((run / "state.json").read_text())
    state["finished"] = False
    (run / "state.json").write_text(json.dumps(state))
    assert (
        train_navigator(_config(tmp_path, episodes=40), backend=ScriptedArithLM()).summary["episodes"] == 40
    )
    assert not sentinel.exists()


def test_arith_hard_is_a_task_of_its_own_split():
    import re

    hard = load_task("arith-hard", "train", 40, seed=0)
    plain = load_task("arith", "train", 40, seed=0)
    assert all(p.kind == "arith" for p in hard) and not {p.id for p in hard} & {p.id for p in plain}
    assert max(len(n) for p in hard for n in re.findall(r"\d+", p.question)) == 4
    with pytest.raises(ValueError, match="use arith, arith-hard, one of"):
        load_task("arith-impossible", "test", 5)


def test_the_summary_names_the_best_validated_navigator_when_the_final_one_is_worse():
    summary = {
        "validation_accuracy": 0.57, "validation_tokens_per_problem": 1840.0, "validation_problems": 100,
        "validation_blocks": {"debate": 353}, "validation_cot_accuracy": 0.85,
        "validation_cot_tokens_per_problem": 147.0, "best_validation_accuracy": 0.85, "best_episode": 250,
        "navigator_best": "runs/g1/navigator-best.safetensors",
    }  # fmt: skip
    text = summary_text(summary)
    assert text.startswith("validation accuracy 0.570, 1840 tokens per problem")
    assert text.endswith(
        "the best validated navigator (episode 250) scored 0.850, above the final one: "
        "runs/g1/navigator-best.safetensors"
    )
    assert "best validated" not in summary_text({**summary, "best_validation_accuracy": 0.57})
