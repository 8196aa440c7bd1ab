"""`reasonkit train-hrpo` end to end on a tiny GatedLM: the run directory, resuming, the trained
directory as a backend spec, and bad input refused with one clear message."""

from __future__ import annotations

import json

import pytest
import torch
from models.gated_lm_helpers import make_model
from safetensors.torch import load_file

from reasonkit.backends.loading import load_backend
from reasonkit.cli import main
from reasonkit.config import parse_config
from reasonkit.hrpo.config import HRPOConfig
from reasonkit.hrpo.train import lr_factor, train_hrpo
from reasonkit.models.builtin.checkpoint import export_model
from reasonkit.rundir import RunDirError, read_jsonl

FAST = ["--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "12",
        "--test-problems", "3", "--save-every", "1", "--progress", "false", "--ops", "2", "--temperature", "1.0",
        "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A random 2-layer GatedLM with the built-in tokenizer and the compact pack (a real model directory)."""
    directory = tmp_path_factory.mktemp("tiny") / "model"
    model = make_model(["gla", "attn"], dtype=torch.float32, vocab_size=128)
    model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id = 0, 1, 2
    export_model(model, directory, {"trained_by": "tests"})
    return str(directory)


def run(tmp_path, model_dir, *extra):
    return train_hrpo(parse_config(HRPOConfig, ["--out", str(tmp_path), "--model", model_dir, *FAST, *extra]))


def test_a_run_writes_its_directory_and_serves_as_a_backend(tmp_path, tiny_model_dir):
    summary = run(tmp_path / "run", tiny_model_dir)
    out = tmp_path / "run"
    assert summary["status"] == "finished" and summary["step"] == 2 and summary["test_n"] == 3
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for key in ("reward", "hidden_share", "length", "kl", "rollout_s", "reference_s", "update_s"):
        assert key in records[0]
    assert 0.02 < records[0]["hidden_share"] < 0.15  # the init range: mostly the token embedding
    for name in ("reward.png", "hidden_share.png", "length.png", "summary.json", "test.json", "run.json"):
        assert (out / name).is_file(), name
    policy = out / "checkpoint" / "policy"
    card = json.loads((policy / "hrpo.json").read_text())
    assert card["temperature"] == 1.0 and card["mode"] == "hrpo" and card["step"] == 2
    assert set(load_file(policy / "mixer.safetensors")) == {"gate_r.weight", "gate_r.bias", "gate_i.weight",
                                                            "gate_i.bias", "Lambda"}  # fmt: skip
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.bin"))  # no pickle anywhere

    backend = load_backend(f"hrpo:{out}")
    assert backend.hooks is not None and backend.hooks.temperature == 1.0  # greedy h uses the training τ
    from reasonkit.hrpo.evaluate import evaluate
    from reasonkit.hrpo.problems import evaluation_problems

    cfg = parse_config(HRPOConfig, ["--out", str(out), "--model", tiny_model_dir, *FAST])
    again = evaluate(backend, evaluation_problems(cfg, "test", 3), max_new_tokens=12)
    stored = json.loads((out / "test.json").read_text())
    assert [(r["correct"], r["tokens"]) for r in again] == [(r["correct"], r["tokens"]) for r in stored]


def test_the_cli_solves_and_evaluates_with_a_trained_directory(tmp_path, tiny_model_dir, capsys):
    run(tmp_path / "run", tiny_model_dir, "--steps", "1", "--test-problems", "0")
    spec = f"hrpo:{tmp_path / 'run'}"
    assert main(["solve", "3+4", "--model", spec, "--threads", "1"]) == 0
    assert "cost: 1 calls" in capsys.readouterr().out
    out = tmp_path / "eval"
    code = main(["eval", "--bench", "arith", "--limit", "3", "--model", spec, "--out", str(out),
                 "--max-new-tokens", "8", "--progress", "false", "--threads", "1"])  # fmt: skip
    assert code == 0 and any(out.iterdir())


def test_grpo_mode_has_no_mixer_and_loads_as_the_plain_fine_tuned_model(tmp_path, tiny_model_dir):
    run(tmp_path, tiny_model_dir, "--mode", "grpo", "--steps", "1", "--test-problems", "0")
    assert not (tmp_path / "checkpoint" / "policy" / "mixer.safetensors").exists()
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert records[0]["hidden_share"] == 0.0 and records[0]["thinking_length"] > 0
    assert load_backend(f"hrpo:{tmp_path}").hooks is None


@pytest.mark.parametrize("extra", [["--mode", "raw-hidden"], ["--mode", "fixed-interp"], ["--two-pass"]])
def test_the_ablations_and_the_two_pass_option_train_and_load(tmp_path, tiny_model_dir, extra):
    run(tmp_path, tiny_model_dir, "--steps", "1", "--test-problems", "0", *extra)
    record = read_jsonl(tmp_path / "metrics.jsonl")[0]
    assert record["hidden_share"] > 0 and record["grad_norm"] is not None
    backend = load_backend(f"hrpo:{tmp_path}")
    assert backend.hooks is not None and backend.hooks.mixer is not None
    assert backend.hooks.hidden_source == ("last_hidden" if "raw-hidden" in extra else "projection")


def test_a_base_model_changed_after_training_is_refused_naming_the_fix(tmp_path, tiny_model_dir):
    import shutil

    from reasonkit.backends.hf_load import fingerprint
    from reasonkit.backends.loading import SpecError

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    short = ("--steps", "2", "--test-problems", "0")
    run(tmp_path / "run", str(base), *short, "--max-minutes", "0")  # stops (resumably) after step 1
    card = json.loads((tmp_path / "run" / "checkpoint" / "policy" / "hrpo.json").read_text())
    assert card["base_model"] == str(base) and card["base_digest"] == fingerprint(base)
    load_backend(f"hrpo:{tmp_path / 'run'}")  # the same weights: loads
    other = make_model(["gla", "attn"], dtype=torch.float32, seed=1, vocab_size=128)  # retrained in place
    other.config.pad_token_id, other.config.bos_token_id, other.config.eos_token_id = 0, 1, 2
    export_model(other, base, {"trained_by": "tests"})
    with pytest.raises(SpecError, match=r"hrpo.json was trained on .*base' with weights .* now has weights"):
        load_backend(f"hrpo:{tmp_path / 'run'}")
    with pytest.raises(RunDirError, match=r"trained on .*base' with weights .* now has weights"):
        run(tmp_path / "run", str(base), *short)  # nor resumed over them


def test_a_rerun_resumes_and_a_run_with_other_settings_is_refused(tmp_path, tiny_model_dir):
    run(tmp_path, tiny_model_dir, "--max-minutes", "0")  # stops (resumably) after its first step
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1]
    summary = run(tmp_path, tiny_model_dir)
    assert summary["status"] == "finished" and [
        r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")
    ] == [1, 2]
    with pytest.raises(RunDirError, match="beta"):
        run(tmp_path, tiny_model_dir, "--beta", "0.1")


def test_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(99, 100, 0.1) < 1e-3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "--out is required"),
        (["--out", "x", "--group-size", "1"], "--group-size must be >= 2"),
        (["--out", "x", "--temperature", "0"], "--temperature must be > 0"),
        (["--out", "x", "--ops", "9"], "--ops must list operation counts in 1..8"),
        (["--out", "x", "--mode", "grpo", "--two-pass"], "--two-pass"),
        (["--out", "x", "--r-min", "0.999", "--r-max", "0.99"], "--r-min"),
    ],
)
def test_bad_flags_end_in_one_line_naming_the_fix(capsys, args, needle):
    assert main(["train-hrpo", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_a_server_model_is_refused_naming_what_to_use(tmp_path, capsys):
    code = main(["train-hrpo", "--out", str(tmp_path / "r"), "--model", "openai:http://127.0.0.1:9/v1#m"])
    err = capsys.readouterr().err
    assert code == 1 and "train-hrpo" in err and "builtin" in err


def test_hrpo_spec_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backend(f"hrpo:{tmp_path / 'missing'}")
    with pytest.raises(FileNotFoundError, match="train-hrpo run"):
        load_backend(f"hrpo:{tmp_path}")
    policy = tmp_path / "checkpoint" / "policy"
    policy.mkdir(parents=True)
    (policy / "hrpo.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_backend(f"hrpo:{tmp_path}")
    (policy / "hrpo.json").write_text(json.dumps({"format": "reasonkit.hrpo/1", "mode": "hrpo"}))
    with pytest.raises(ValueError, match="lacks"):
        load_backend(f"hrpo:{tmp_path}")
