"""`reasonkit train-lm` on a tiny config: trains from scratch, resumes exactly, exports a loadable model,
and refuses bad input with one clear message."""

from __future__ import annotations

import json

import pytest
import torch
from payloads import plant

from reasonkit.config import ConfigError, parse_config
from reasonkit.models.builtin.checkpoint import CHECKPOINT, EXPORT_FILES, load_checkpoint
from reasonkit.models.builtin.config import TrainLMConfig
from reasonkit.models.builtin.data import IGNORE, PairEncoder, build_step
from reasonkit.models.builtin.entry import run_main
from reasonkit.models.builtin.train import Trainer, learning_rate, train_lm, train_lm_command
from reasonkit.rundir import read_jsonl

TINY = [
    "--hidden-size", "32", "--num-layers", "2", "--layer-types", "gla", "attn", "--num-heads", "2",
    "--num-kv-heads", "1", "--batch-size", "6", "--warmup-steps", "2", "--log-every", "2",
    "--val-every", "3", "--val-pairs", "8", "--save-every", "2", "--device", "cpu", "--threads", "1",
    "--workers", "0", "--progress", "false",
]  # fmt: skip


def tiny(out, *extra: str) -> TrainLMConfig:
    return parse_config(TrainLMConfig, ["--out", str(out), *TINY, *extra])


def test_batches_train_on_targets_only_and_respect_the_token_budget():
    encoder = PairEncoder()
    batch = build_step(encoder, "train", seed=0, step=3, batch_size=24, max_tokens=600, bucket_ratio=0.75)
    assert batch.step == 3 and sum(len(m.tasks) for m in batch.micro) == 24
    for micro in batch.micro:
        rows, width = micro.input_ids.shape
        assert rows * width <= max(600, width)  # one over-long row may stand alone
        assert (micro.input_ids[:, 0] == encoder.bos).all()
        lengths = (micro.input_ids != encoder.pad).sum(1)
        assert lengths.min() >= 0.75 * width  # bucketed: little padding
        for r in range(rows):
            labelled = (micro.labels[r] != IGNORE).nonzero().flatten()
            assert labelled.numel() > 0 and labelled[-1] == lengths[r] - 1  # the target ends the row
            assert micro.input_ids[r, labelled[-1]] == encoder.tokenizer.token_to_id("\n")
    # the same step is the same batch whoever builds it (resuming regenerates the unseen pairs exactly)
    again = build_step(
        PairEncoder(), "train", seed=0, step=3, batch_size=24, max_tokens=600, bucket_ratio=0.75
    )
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(batch.micro, again.micro))


def test_the_stream_is_rendered_with_the_runs_pack():
    from reasonkit.models.builtin.data import validation_set
    from reasonkit.tasks.arith import training_examples

    pairs = list(training_examples("validation", n=400, seed=0, pack="compact"))
    pairs2 = list(training_examples("validation", n=400, seed=0, pack="compact2"))
    summaries = 0
    for (prompt, target), (prompt2, target2) in zip(pairs, pairs2):  # the same states, one prompt differs
        summaries += "<sum>" in prompt
        assert target2 == target and prompt2 == (prompt + "<sum>" if "<sum>" in prompt else prompt)
    assert summaries >= 5
    sum_id = PairEncoder().tokenizer.token_to_id("<sum>")
    closing = [  # the training rows of compact2: the token before a summary's target is <sum>
        int(micro.input_ids[r, int((micro.labels[r] != IGNORE).nonzero()[0]) - 1]) == sum_id
        for micro in validation_set(0, 400, 100_000, "compact2")
        for r, task in enumerate(micro.tasks)
        if task == "sum"
    ]
    assert len(closing) == summaries and all(closing)


def test_a_compact3_stream_writes_refine_scratch_and_nothing_else_changes():
    from reasonkit.packs import load_pack
    from reasonkit.tasks.arith import training_examples
    from reasonkit.tasks.arith.expr import parse, value_of

    compact3 = load_pack("compact3")
    pairs2 = list(training_examples("validation", n=400, seed=0, pack="compact2"))
    pairs3 = list(training_examples("validation", n=400, seed=0, pack="compact3"))
    refines = 0
    for (prompt2, target2), (prompt3, target3) in zip(pairs2, pairs3):  # the same states and prompts
        assert prompt3 == prompt2
        if not prompt3.endswith("<refine>"):
            assert target3 == target2
            continue
        refines += 1
        scratch, _, rest = target3.partition("#")
        assert rest == target2 and compact3.parse_refine(target3) == target2.strip()
        calcs = [c.split("=") for c in target2.partition("|")[0].split(",") if "=" in c]
        assert scratch == ",".join(
            f"{lhs}~{value[0] * (value[0] == '-')}{value.lstrip('-')[::-1]}" for lhs, value in calcs
        )
        for lhs, value in calcs:  # the scratch holds the true values, digits reversed
            assert value_of(parse(lhs)) == int(value)
    assert refines >= 20


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = TrainLMConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 100) == pytest.approx(1e-4)
    assert learning_rate(cfg, 50) < learning_rate(cfg, 20)


def test_trains_from_scratch_then_resumes_exactly(tmp_path):
    straight = train_lm(tiny(tmp_path / "a", "--steps", "6"))
    assert straight["status"] == "finished" and straight["step"] == 6

    first = train_lm(tiny(tmp_path / "b", "--steps", "6", "--stop-at", "3"))
    assert first["status"] == "stopped" and first["step"] == 3
    saved = load_checkpoint(tmp_path / "b" / CHECKPOINT)
    assert saved["step"] == 3 and saved["pairs"] == 18
    resumed = Trainer(tiny(tmp_path / "b", "--steps", "6"))
    assert resumed.step == 3
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, saved["model"][name]), name
    assert resumed.run()["step"] == 6

    # stopping and resuming changes nothing: same data, same optimizer state, same weights
    a = load_checkpoint(tmp_path / "a" / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "b" / CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    records = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [2, 3, 4, 6]
    assert any("val_loss" in r for r in records)
    assert (tmp_path / "b" / "loss.png").stat().st_size > 0
    assert (tmp_path / "b" / "accuracy.png").stat().st_size > 0


@pytest.mark.parametrize("pack", ["compact", "compact2"])
def test_export_loads_through_hf_backend_with_the_pack_it_was_trained_on(tmp_path, pack):
    from reasonkit.backends.hf import HFBackend
    from reasonkit.types import SamplingParams

    train_lm(tiny(tmp_path / "run", "--steps", "2", "--export", str(tmp_path / "exported"), "--pack", pack))
    for directory in (tmp_path / "run" / "model", tmp_path / "exported"):
        assert sorted(p.name for p in directory.iterdir()) == sorted(EXPORT_FILES)
        card = json.loads((directory / "reasonkit.json").read_text())
        assert card["prompt_pack"] == pack and card["step"] == 2
        assert card["train_config"]["hidden_size"] == 32
    backend = HFBackend(str(tmp_path / "exported"), device="cpu")
    assert backend.prompt_pack == pack
    assert backend.model.config.gla_kernel == "auto"
    out = backend.generate(["<q>1+2<ans>"], SamplingParams(max_new_tokens=3, temperature=0.0))
    assert out[0][0].tokens_out <= 3


def test_resume_with_other_settings_is_refused_but_more_steps_extend_the_run(tmp_path):
    train_lm(tiny(tmp_path, "--steps", "2"))
    assert train_lm(tiny(tmp_path, "--steps", "3"))["step"] == 3  # the schedule stretches to the new end
    with pytest.raises(ValueError, match=r"hidden_size: stored 32 vs now 48.*new --out"):
        Trainer(tiny(tmp_path, "--steps", "2", "--hidden-size", "48"))  # the checkpoint's settings
    with pytest.raises(ValueError, match=r"a different train-lm run \(hidden_size: stored 32 vs now 48"):
        train_lm(tiny(tmp_path, "--steps", "2", "--hidden-size", "48"))  # the run directory's claim


def test_a_damaged_checkpoint_fails_with_its_path(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"checkpoint\.pt is not a readable train-lm checkpoint.*delete it"):
        Trainer(tiny(tmp_path, "--steps", "2"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--layer-types", "gla", "attn", "gla"], "layer_types has 3 entries but num_layers is 2"),
        (["--layer-types", "gla", "gla"], "gla \\+ attn hybrid"),
        (["--steps", "0"], "steps must be a positive integer"),
        (["--vocab-size", "64"], "vocab_size must be >= 114"),
        (["--bucket-ratio", "1.5"], "bucket_ratio must be in"),
        (["--pack", "natural"], "does not use the built-in tokenizer's control tokens"),
        (
            ["--pack", "nope"],
            "no prompt pack 'nope': built-in packs are compact, compact2, compact3, natural",
        ),
    ],
)
def test_bad_config_values_name_the_field(tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        tiny(tmp_path, *flags)


def test_unknown_yaml_field_and_cuda_without_a_gpu(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("hidden_sise: 64\n")
    assert run_main(train_lm_command, ["--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "unknown field(s) ['hidden_sise']" in err and err.count("\n") == 1
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            Trainer(tiny(tmp_path / "gpu", "--device", "cuda", "--steps", "1"))


def test_data_workers_deliver_the_same_ordered_stream(tmp_path):
    # two worker processes each build every second step; the loader must hand them over in order
    in_process = train_lm(tiny(tmp_path / "w0", "--steps", "4"))
    workers = train_lm(tiny(tmp_path / "w2", "--steps", "4", "--workers", "2"))
    assert in_process["step"] == workers["step"] == 4
    a = load_checkpoint(tmp_path / "w0" / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "w2" / CHECKPOINT)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_reports_every_figure_and_refuses_a_missing_model(tmp_path, capsys):
    from reasonkit.evals.builtin_lm import EvaluateConfig, evaluate_command, evaluate_model, markdown

    train_lm(tiny(tmp_path / "run", "--steps", "1"))
    cfg = EvaluateConfig(model=str(tmp_path / "run" / "model"), per_ops=1, states=3, threads=1)
    results = evaluate_model(cfg)
    assert list(results["cot"]["by_ops"]) == [str(k) for k in range(1, 9)]
    assert results["refine"]["n"] == 3 and results["self_eval"]["n"] == 6
    assert set(results["self_eval"]["agreement"]) == {"A1", "A2", "A3", "B1", "B2", "C1", "C2"}
    assert set(results["summary"]["met"]) == {
        "cot_1_2_ops",
        "refine_repair",
        "self_eval_a3",
        "cot_lower_at_6_8",
    }
    assert markdown(results).startswith("| strategy | 1 ops |")

    capsys.readouterr()  # drop transformers' loading bar
    assert run_main(evaluate_command, ["--model", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "no such directory" in err and err.count("\n") == 1


def test_init_from_an_export_continues_the_schedule_with_a_rewarmed_optimizer(tmp_path):
    from safetensors.torch import load_file

    train_lm(tiny(tmp_path / "first", "--steps", "6", "--stop-at", "2"))
    exported = tmp_path / "first" / "model"
    trainer = Trainer(tiny(tmp_path / "second", "--steps", "6", "--init-from", str(exported)))
    assert trainer.step == 2 and trainer.pairs == 12  # the data stream continues at pair 12
    weights = load_file(str(exported / "model.safetensors"))
    for name, value in weights.items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
    assert trainer.lr_at(2) == pytest.approx(learning_rate(trainer.cfg, 2) / 2)  # warmup_steps=2
    assert trainer.lr_at(3) == pytest.approx(learning_rate(trainer.cfg, 3))
    assert trainer.run()["step"] == 6

    with pytest.raises(ValueError, match=r"no reasonkit\.json in "):
        Trainer(tiny(tmp_path / "third", "--init-from", str(tmp_path)))
    with pytest.raises(ValueError, match="hidden_size: stored 32 vs now 48"):
        Trainer(tiny(tmp_path / "fourth", "--hidden-size", "48", "--init-from", str(exported)))


def test_a_pickle_planted_in_the_checkpoint_never_runs(tmp_path):
    train_lm(tiny(tmp_path, "--steps", "2"))
    sentinel = tmp_path.parent / f"{tmp_path.name}-executed"
    plant(tmp_path / "checkpoint.pt", sentinel)
    with pytest.raises(ValueError, match=r"checkpoint.pt is not a readable train-lm checkpoint.*delete it"):
        train_lm(tiny(tmp_path, "--steps", "3"))
    assert not sentinel.exists()
