"""Training, checkpoints, the run directory and the train-workspace command on tiny configurations."""

import json
import re

import pytest
import torch
from payloads import plant

from reasonkit.config import ConfigError, parse_config
from reasonkit.rundir import read_jsonl
from reasonkit.workspaces.addition import SPLITS, AdditionTask, make_pairs
from reasonkit.workspaces.command import format_table, run_study, train_workspace_command
from reasonkit.workspaces.config import WorkspaceConfig
from reasonkit.workspaces.models import build_model, own_parameters
from reasonkit.workspaces.train import evaluate, load_checkpoint, load_trained, train_run

TINY = dict(addend_range=4, extrapolation_range=6, code_size=12, batch_size=64, lr=1e-2)


def tiny_task(config: WorkspaceConfig) -> AdditionTask:
    pairs = make_pairs(
        config.addend_range, config.extrapolation_range, config.holdout_fraction, config.split_seed
    )
    return AdditionTask(config.variant, pairs, config.code_size)


def test_short_training_run_learns_the_module_sequence(tmp_path):
    config = WorkspaceConfig(out=str(tmp_path), steps=150, eval_every=150, **TINY)
    summary = train_run("gw", 0, config, tiny_task(config), tmp_path)
    assert summary["accuracy"]["train"] > 0.95
    assert summary["accuracy"]["interpolation"] > 0.95
    assert summary["accuracy"]["extrapolation"] > 0.95
    # The learned controller runs Input (repeating it is a no-op that training does not punish), then
    # exactly b increments, then Output.
    model = load_trained(tmp_path, "gw", 0, config)
    pairs = torch.tensor([[3, 2], [1, 0], [5, 3], [0, 3]])
    results = model.router.run(
        torch.nn.functional.one_hot(pairs, 12).float(), max_steps=config.eval_max_steps
    )
    for (a, b), result in zip(pairs.tolist(), results):
        assert re.fullmatch(rf"(input )+(increment ){{{b}}}output", " ".join(result.modules)), result.modules
        assert result.answer == a + b


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("model", ["gw", "lstm"])
def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path, model):
    config = WorkspaceConfig(out=str(tmp_path / "a"), steps=20, eval_every=10, **TINY)
    task = tiny_task(config)
    straight = train_run(model, 1, config, task, tmp_path / "a")

    seen = []

    def stop_after_13(n, loss):
        seen.append(n)
        if sum(seen) == 13:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(model, 1, config, task, tmp_path / "b", on_step=stop_after_13)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / f"{model}-seed1.pt")["step"] == 10
    resumed = train_run(model, 1, config, task, tmp_path / "b")
    assert resumed["accuracy"] == straight["accuracy"]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / f"{model}-seed1.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / f"{model}-seed1.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Round trip: a model rebuilt from the checkpoint predicts what the trained one did.
    rebuilt = load_trained(tmp_path / "b", model, 1, config)
    assert evaluate(rebuilt, task) == resumed["accuracy"]
    # Records of the replayed steps are logged again; readers keep the last one per step.
    steps = [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl") if r["model"] == model]
    assert steps == [10, 20]


def test_corrupt_checkpoint_fails_clearly(tmp_path):
    config = WorkspaceConfig(out=str(tmp_path), steps=10, eval_every=5, **TINY)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "gw-seed0.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="delete it to restart"):
        train_run("gw", 0, config, tiny_task(config), tmp_path)


def test_a_pickle_planted_in_a_checkpoint_never_runs(tmp_path):
    config = WorkspaceConfig(out=str(tmp_path / "run"), steps=10, eval_every=5, **TINY)
    sentinel = tmp_path / "executed"
    plant(tmp_path / "run" / "checkpoints" / "gw-seed0.pt", sentinel)
    with pytest.raises(RuntimeError, match=r"cannot be read.*delete it to restart"):
        train_run("gw", 0, config, tiny_task(config), tmp_path / "run")
    assert not sentinel.exists()


def test_study_writes_results_plots_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--out", str(out), "--steps", "12", "--eval-every", "6", "--seeds", "0", "1", "2",
            "--addend-range", "4", "--extrapolation-range", "6", "--code-size", "12"]  # fmt: skip
    assert train_workspace_command(argv) == 0
    assert "| gw |" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"gw", "lstm", "transformer"}
    config = parse_config(WorkspaceConfig, argv)
    for name, entry in results["models"].items():
        assert entry["params"] == own_parameters(build_model(name, config))
        assert entry["seeds"] == [0, 1, 2]
        for split in SPLITS:
            per_seed = [json.loads((out / "runs" / f"{name}-seed{s}.json").read_text())["accuracy"][split]
                        for s in (0, 1, 2)]  # fmt: skip
            acc = entry["accuracy"][split]
            assert acc["per_seed"] == pytest.approx(per_seed, abs=1e-4)
            assert acc["mean"] == pytest.approx(sum(per_seed) / 3, abs=1e-4)
            assert acc["std"] == pytest.approx(torch.tensor(per_seed).std().item(), abs=1e-4)
    assert results["models"]["gw"]["params"] < results["models"]["transformer"]["params"]
    # Interpolation split by whether the commuted pair was trained: the two groups make up the whole.
    task = tiny_task(config)
    swapped = task.swap_in_train("interpolation")
    for entry in results["models"].values():
        acc = entry["accuracy"]
        for s in range(3):
            parts = acc["interpolation_swap_in_train"]["per_seed"][s] * int(swapped.sum())
            parts += acc["interpolation_swap_unseen"]["per_seed"][s] * int((~swapped).sum())
            assert parts / len(swapped) == pytest.approx(acc["interpolation"]["per_seed"][s], abs=1e-3)
    assert results["splits"]["train"]["pairs"] == 13 and results["splits"]["extrapolation"]["pairs"] == 8
    for png in ("accuracy.png", "curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| model | params |" in format_table(results)
    # Running again trains nothing and reports the same numbers.
    records = len(read_jsonl(out / "metrics.jsonl"))
    again = run_study(config, progress=False)
    assert again["models"] == results["models"] and len(read_jsonl(out / "metrics.jsonl")) == records
    # A directory made with other settings is refused, naming the field.
    with pytest.raises(ValueError, match=r"a different study \(steps: stored 12 vs now 13\)"):
        run_study(parse_config(WorkspaceConfig, [*argv, "--steps", "13"]), progress=False)


def test_images_variant_runs_end_to_end(tmp_path):
    config = WorkspaceConfig(variant="images", out=str(tmp_path), steps=6, eval_every=6, seeds=(0,),
                             encoder_steps=30, eval_draws=2)  # fmt: skip
    results = run_study(config, progress=False)
    assert results["digit_encoder"]["held_out_accuracy"]["mean"] > 0.5
    assert set(results["digit_encoder"]["both_digits_read"]) == set(SPLITS)
    shifts = results["models"]["gw"]["learned_per_seed"][0]["increment_shift_weights"]
    assert list(shifts) == ["-2", "-1", "+0", "+1", "+2"]
    assert sum(shifts.values()) == pytest.approx(1, abs=1e-3)
    assert (tmp_path / "checkpoints" / "encoder-seed0.pt").exists()
    gw = load_trained(tmp_path, "gw", 0, config)
    # The encoder is frozen and excluded from the count; the learned increment is 5 shift logits.
    increment = gw.router.chain[1]
    assert increment.shift_logits.requires_grad and results["models"]["gw"]["params"] == own_parameters(gw)
    assert own_parameters(gw) == sum(p.numel() for p in gw.router.controller.parameters()) + 5


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(SystemExit):
        parse_config(WorkspaceConfig, ["--variant", "mnist", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="pass --out DIR"):
        parse_config(WorkspaceConfig, [])
    with pytest.raises(ConfigError, match="extrapolation_range must be <= 10"):
        parse_config(WorkspaceConfig, ["--variant", "images", "--out", "x", "--extrapolation-range", "12"])
    with pytest.raises(ConfigError, match="models must be a non-empty subset"):
        parse_config(WorkspaceConfig, ["--out", "x", "--models", "gw", "mlp"])
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        parse_config(WorkspaceConfig, ["--out", "x", "--steps", "0"])
    resolved = parse_config(WorkspaceConfig, ["--variant", "images", "--out", "x"])
    assert (resolved.addend_range, resolved.extrapolation_range, resolved.code_size) == (7, 10, 20)
    assert (resolved.train_max_steps, resolved.eval_max_steps) == (9, 12)
