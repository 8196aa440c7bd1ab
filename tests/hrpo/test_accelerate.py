"""`accelerate launch --num_processes 2 --cpu … train-hrpo` gives the one-process result with the same
global batch: the same samples (a row's generator depends on (seed, step, prompt, sample) only), the
same per-step figures, the same trained adapter and gates (DDP's mean of the two processes' gradients
is the one process's mean over the whole batch), and the same greedy test sharded over two processes.

The shipped built-in model on 2-operation problems sampled at τ = 1 (a random model never earns a
reward, so nothing would train and the comparison would be empty). Two real processes talking over
gloo: slow on 2 cores (about a minute), so ``-m slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonkit.config import parse_config
from reasonkit.hrpo.config import HRPOConfig
from reasonkit.hrpo.train import train_hrpo
from reasonkit.rundir import read_jsonl

ARGS = ["--model", "builtin", "--steps", "2", "--prompts-per-step", "4", "--group-size", "4", "--micro-batch", "6",
        "--max-new-tokens", "64", "--test-problems", "6", "--save-every", "2", "--progress", "false",
        "--ops", "2", "--temperature", "1.0", "--threads", "1", "--lr", "1e-2", "--lr-gates", "1e-2"]  # fmt: skip
PER_STEP = ("reward", "correct", "length", "thinking_length", "hidden_share", "kl", "loss", "grad_norm")


def _accelerate() -> str | None:
    here = Path(sys.executable).with_name("accelerate")
    return str(here) if here.exists() else shutil.which("accelerate")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hrpo", "grpo"])
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, mode):
    launcher = _accelerate()
    if launcher is None:
        pytest.skip("the accelerate command is not installed")
    common = ["--mode", mode, *ARGS]

    one = tmp_path / "one"
    train_hrpo(parse_config(HRPOConfig, ["--out", str(one), *common]))

    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [launcher, "launch", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--cpu", "-m", "reasonkit", "train-hrpo", "--out", str(two), *common]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    first, second = read_jsonl(one / "metrics.jsonl"), read_jsonl(two / "metrics.jsonl")
    assert [r["step"] for r in first] == [r["step"] for r in second] == [1, 2]
    assert any(r["groups_with_signal"] > 0 for r in first)  # some step had a gradient to compare
    for a, b in zip(first, second):
        for key in PER_STEP:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key

    policy = Path("checkpoint") / "policy"
    for name in ["adapter_model.safetensors"] + (["mixer.safetensors"] if mode == "hrpo" else []):
        x, y = load_file(one / policy / name), load_file(two / policy / name)
        assert x.keys() == y.keys()
        for key in x:
            torch.testing.assert_close(y[key], x[key], rtol=0, atol=1e-5, msg=key)
    trained = load_file(one / policy / "adapter_model.safetensors")
    assert any(float(v.abs().max()) > 0 for k, v in trained.items() if "lora_B" in k)  # it did train

    test_one, test_two = (json.loads((d / "test.json").read_text()) for d in (one, two))
    assert [(r["id"], r["correct"], r["tokens"]) for r in test_one] == [
        (r["id"], r["correct"], r["tokens"]) for r in test_two
    ]
