"""Bad input ends in one clear error that names the fix: backend specs, model directories, flags."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from reasonkit.backends.loading import SpecError, load_backend
from reasonkit.cli import main
from reasonkit.tah.config import TaHConfig
from reasonkit.tah.model import TaHModel
from reasonkit.tah.passes import dense_logits


@pytest.fixture(scope="module")
def tah_dir(tiny_dir, tmp_path_factory):
    """A saved (untrained) Think-at-Hard directory with LoRA and a decider."""
    lm = load_backend(str(tiny_dir)).whitebox
    model = TaHModel(lm, TaHConfig())
    model.decider = model.new_decider()
    return model.save(tmp_path_factory.mktemp("tah") / "tah", card={"prompt_pack": "compact"})


def broken_copy(tah_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tah_dir, target)
    return target


def test_a_saved_directory_loads(tah_dir):
    backend = load_backend(f"tah:{tah_dir}#threshold=0.5,route=always")
    assert backend.hooks.model.config.threshold == 0.5 and backend.hooks.model.config.route == "always"
    assert backend.name.startswith("tah:") and backend.prompt_pack == "compact"


def test_missing_and_malformed_directories(tah_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory; pass the directory reasonkit train-tah"):
        load_backend(f"tah:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match=r"tah\.json does not exist"):
        load_backend(f"tah:{tmp_path}")
    bad = broken_copy(tah_dir, tmp_path)
    (bad / "tah.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_backend(f"tah:{bad}")
    (bad / "tah.json").write_text(json.dumps({"format": "something-else", "config": {}}))
    with pytest.raises(ValueError, match="not a Think-at-Hard record"):
        load_backend(f"tah:{bad}")
    (bad / "tah.json").write_text(json.dumps({"format": "reasonkit-tah", "config": {"depth": 2}}))
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['depth'\]"):
        load_backend(f"tah:{bad}")


def test_missing_parts_name_the_way_out(tah_dir, tmp_path):
    bad = broken_copy(tah_dir, tmp_path)
    shutil.rmtree(bad / "decider")
    with pytest.raises(FileNotFoundError, match=r"decider is missing .*#route=always"):
        load_backend(f"tah:{bad}")
    assert load_backend(f"tah:{bad}#route=never").hooks.model.decider is None
    (bad / "lora" / "adapter.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"adapter\.json is missing"):
        load_backend(f"tah:{bad}#route=never")


def test_bad_overrides_are_spec_errors(tah_dir):
    with pytest.raises(SpecError, match=r"not an override.*\['max_depth', 'route', 'threshold', 'top_k'\]"):
        load_backend(f"tah:{tah_dir}#temperature=1")
    with pytest.raises(SpecError, match="threshold takes a float"):
        load_backend(f"tah:{tah_dir}#threshold=high")
    with pytest.raises(ValueError, match="threshold must be in"):
        load_backend(f"tah:{tah_dir}#threshold=3")
    with pytest.raises(SpecError, match="needs the directory"):
        load_backend("tah:")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--route", "never"], "give --max-depth 1"),
        (["--route", "always", "--max-depth", "1"], "give --max-depth 2 or more"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--pos-weight", "-1"], "--pos-weight must be > 0"),
        (["--threshold", "2"], "threshold <= 1"),
    ],
)
def test_bad_train_flags_end_in_one_line(flags, message, capsys, tmp_path):
    assert main(["train-tah", "--out", str(tmp_path / "run"), *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("reasonkit train-tah: error:") and message in err and "\n" not in err


def test_an_unknown_problem_set_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["train-tah", "--problems", "gsm8k"])
    assert "invalid choice: 'gsm8k'" in capsys.readouterr().err


def test_loglikelihood_scores_the_think_at_hard_forward(tah_dir, tiny_dir):
    """RLoT and lm-eval score through ``loglikelihood``: route=never gives the plain model's scores;
    an always-iterating model scores its continuation with the teacher-forced two-pass logits."""
    prefix, conts = "<q>12+7<cot>", ["12+7=19", "1"]
    plain = load_backend(str(tiny_dir)).loglikelihood(prefix, conts)
    never = load_backend(f"tah:{tah_dir}#route=never").loglikelihood(prefix, conts)
    assert never == pytest.approx(plain, abs=1e-5)
    backend = load_backend(f"tah:{tah_dir}#route=always")
    scored = backend.loglikelihood(prefix, conts)
    model = backend.hooks.model
    with torch.no_grad():  # lora B starts at zero: give the adapters weight so the second pass matters
        for name, p in model.lm.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    moved = backend.loglikelihood(prefix, conts)
    context = backend.encode(prefix)
    for cont, value in zip(conts, moved):
        tokens = list(backend.tokenizer(cont, add_special_tokens=False)["input_ids"])
        ids = torch.tensor([context + tokens])
        eligible = torch.zeros_like(ids, dtype=torch.bool)
        eligible[0, len(context) - 1 :] = True
        with torch.no_grad():
            logits = dense_logits(model.run(ids, None, eligible), *ids.shape)[0].float()
        logp = torch.log_softmax(logits[len(context) - 1 : -1], -1)
        assert value == pytest.approx(float(logp.gather(1, torch.tensor(tokens)[:, None]).sum()), abs=1e-4)
    assert moved != pytest.approx(scored, abs=1e-3)
