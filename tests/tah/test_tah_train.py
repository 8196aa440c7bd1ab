"""train-tah on a tiny built-in-family model: labels and targets by hand, both stages, resuming
bit-identically, the exported directory as a ``tah:`` backend with per-token depths in traces."""

from __future__ import annotations

import json

import torch

from reasonkit.backends.loading import load_backend
from reasonkit.tah.data import IGNORE, TextBatch, encode_pairs, oracle_depths
from reasonkit.tah.train import train_tah
from reasonkit.tah.train_config import TrainTaHConfig


def small(tiny_dir, out, **overrides) -> TrainTaHConfig:
    fields = dict(
        model=str(tiny_dir), out=str(out), steps=2, decider_steps=2, batch_size=2, val_pairs=2, val_every=1,
        log_every=1, progress=False, threads=1, problems="arith", decider_hidden=8, decider_blocks=1,
    )  # fmt: skip
    fields.update(overrides)
    return TrainTaHConfig(**fields)


def test_targets_mark_the_positions_that_predict_target_tokens(tiny_dir):
    backend = load_backend(str(tiny_dir))
    batch = encode_pairs(backend, [("<q>1+2<cot>", "3\n"), ("<q>12+3<cot>", "15\n")])
    prompt = backend.encode("<q>12+3<cot>")  # <bos> + 6 control/characters
    row = batch.input_ids[1].tolist()
    assert row[: len(prompt)] == prompt and batch.attention_mask is not None
    # position t holds token t+1 where that token is part of the target
    expected = [IGNORE] * (len(prompt) - 1) + row[len(prompt) : len(prompt) + 3] + [IGNORE]
    assert batch.targets[1].tolist() == expected
    assert batch.targets[0].tolist()[-2:] == [IGNORE, IGNORE]  # the shorter row's padding


def test_oracle_depths_are_the_reference_models_greedy_mistakes(tiny_dir):
    reference = load_backend(str(tiny_dir)).model
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 100, (2, 9), generator=gen)
    targets = torch.cat([ids[:, 1:], torch.full((2, 1), IGNORE)], 1)
    targets[:, :3] = IGNORE  # a prompt
    with torch.no_grad():
        greedy = reference(input_ids=ids).logits.argmax(-1)
    targets[0, 4] = greedy[0, 4]  # one position the reference gets right by construction
    depths = oracle_depths(reference, TextBatch(ids, targets, None), max_depth=3)
    for b in range(2):
        for t in range(9):
            hard = targets[b, t] != IGNORE and greedy[b, t] != targets[b, t]
            assert depths[b, t] == (3 if hard else 1)
    assert depths[0, 4] == 1


def test_both_stages_train_and_a_resumed_run_is_bit_identical(tiny_dir, tmp_path):
    straight = train_tah(small(tiny_dir, tmp_path / "straight"))
    assert straight["status"] == "finished" and straight["stage"] == "decider"
    for stop in (1, 3):  # inside stage 1, then inside stage 2
        assert train_tah(small(tiny_dir, tmp_path / "legs", stop_at=stop))["status"] == "stopped"
    assert train_tah(small(tiny_dir, tmp_path / "legs"))["status"] == "finished"
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "legs" / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    metrics = [json.loads(line) for line in (tmp_path / "legs" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in metrics if "loss" in r] == [
        ("backbone", 1), ("backbone", 2), ("decider", 1), ("decider", 2)
    ]  # fmt: skip
    for name in (
        "loss.png",
        "decider.png",
        "summary.json",
        "tah/tah.json",
        "tah/decider/decider.safetensors",
    ):
        assert (tmp_path / "legs" / name).is_file()


def test_the_trained_directory_is_a_backend_whose_traces_carry_each_tokens_depth(tiny_dir, tmp_path):
    from reasonkit.controller import solve
    from reasonkit.kit.baselines import CoT
    from reasonkit.types import SamplingParams

    train_tah(small(tiny_dir, tmp_path / "run", decider_steps=1, steps=1, threshold=0.0))  # always fires
    cot = CoT(params=SamplingParams(max_new_tokens=12))
    spec = f"tah:{tmp_path / 'run' / 'tah'}"
    trace = solve("12+7", model=spec, strategy=cot, answer="19", kind="arith")
    meta = trace.steps[0].meta["tah"]
    assert len(meta["depths"]) == trace.steps[0].cost.tokens_out == 12
    assert set(meta["depths"]) == {2} and meta["iterated"] == 12
    never = solve("12+7", model=f"{spec}#route=never", strategy=cot, answer="19", kind="arith")
    assert set(never.steps[0].meta["tah"]["depths"]) == {1}
