"""GatedLMConfig.mixer_types (formerly layer_types): old checkpoints keep loading, and tools that open a
model directory without reasonkit (lm-eval's ``AutoTokenizer.from_pretrained``) no longer trip over
transformers' own ``layer_types`` validation."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from gated_lm_helpers import make_model

from reasonkit.backends.loading import BUILTIN_DIR
from reasonkit.models import GatedLMConfig, GatedLMForCausalLM


def test_a_checkpoint_saved_with_the_old_name_loads_the_same_model(tmp_path):
    model = make_model(["gla", "attn", "slstm"], dtype=torch.float32, seed=3)
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    saved["layer_types"] = saved.pop("mixer_types")  # what every checkpoint written before the rename holds
    config_file.write_text(json.dumps(saved))

    loaded = GatedLMForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.mixer_types == ["gla", "attn", "slstm"]
    assert [layer.layer_type for layer in loaded.model.layers] == ["gla", "attn", "slstm"]
    ids = torch.tensor([[1, 5, 9, 4, 7]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)

    loaded.save_pretrained(tmp_path / "resaved")  # saving migrates the file
    resaved = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert resaved["mixer_types"] == ["gla", "attn", "slstm"] and "layer_types" not in resaved


def test_the_old_keyword_still_builds_a_config():
    assert GatedLMConfig(num_hidden_layers=2, layer_types=["attn", "gla"]).mixer_types == ["attn", "gla"]


def test_shipped_config_uses_the_new_name():
    saved = json.loads((BUILTIN_DIR / "config.json").read_text())
    assert "layer_types" not in saved and saved["mixer_types"][:2] == ["gla", "attn"]


def test_auto_tokenizer_opens_the_shipped_directory_without_reasonkit():
    """A fresh interpreter that never imports reasonkit, as lm-eval opens a model directory."""
    code = (
        "import sys, json\n"
        "from transformers import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(BUILTIN_DIR)!r})\n"
        "print(json.dumps({'ids': tok('12+3=15')['input_ids'], "
        "'reasonkit': any(m.split('.')[0] == 'reasonkit' for m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(BUILTIN_DIR)("12+3=15")["input_ids"]
    assert got == {"ids": expected, "reasonkit": False}
