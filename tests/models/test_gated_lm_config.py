"""GatedLMConfig: derived defaults, JSON round trip, and one clear error per bad field."""

from __future__ import annotations

import json

import pytest

from reasonkit.models import GatedLMConfig
from reasonkit.models.gated_lm.configuration import default_layer_types


def test_defaults_are_derived_from_the_given_fields():
    cfg = GatedLMConfig(hidden_size=96, num_hidden_layers=8, num_heads=6)
    assert cfg.mixer_types == ["gla", "gla", "gla", "attn"] * 2  # 3:1 hybrid by default
    assert cfg.num_kv_heads == 6 and cfg.slstm_num_heads == 6
    assert cfg.head_dim == 16
    assert cfg.intermediate_size == 256  # 8/3 * 96 = 256, already a multiple of 32
    assert cfg.gla_key_dim == 48 and cfg.gla_value_dim == 96
    assert default_layer_types(5) == ["gla", "gla", "gla", "attn", "gla"]


def test_transformers_attribute_names_alias_ours():
    cfg = GatedLMConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2, num_hidden_layers=2)
    assert (cfg.num_heads, cfg.num_kv_heads) == (8, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (8, 2)
    assert cfg.head_dim == 8  # derived from the aliased head count


def test_json_round_trip_keeps_every_field(tmp_path):
    cfg = GatedLMConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=3,
        mixer_types=["slstm", "attn", "gla"],
        num_heads=4,
        num_kv_heads=1,
        attn_gate="headwise",
        gla_gate_logit_normalizer=8.0,
        gla_kernel="chunk",
        tie_word_embeddings=False,
    )
    cfg.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "reasonkit_gated_lm"
    assert saved["mixer_types"] == ["slstm", "attn", "gla"] and "layer_types" not in saved
    loaded = GatedLMConfig.from_pretrained(tmp_path)
    for name in (
        "mixer_types",
        "num_kv_heads",
        "attn_gate",
        "gla_gate_logit_normalizer",
        "gla_kernel",
        "tie_word_embeddings",
        "intermediate_size",
        "head_dim",
    ):
        assert getattr(loaded, name) == getattr(cfg, name), name


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(mixer_types=["gla", "mamba"], num_hidden_layers=2), r"unknown layer type\(s\) \['mamba'\]"),
        (dict(mixer_types=["gla"], num_hidden_layers=2), "1 entries but num_hidden_layers is 2"),
        (dict(mixer_types=["gla", "attn"], layer_types=["attn", "gla"]), "keep only mixer_types"),
        (dict(hidden_size=30, num_heads=4), "num_heads=4 does not divide hidden_size=30"),
        (dict(num_heads=4, num_kv_heads=3), "num_kv_heads=3 must be positive and divide num_heads=4"),
        (dict(attn_gate="channelwise"), "attn_gate='channelwise' must be one of"),
        (dict(gla_kernel="fast"), "gla_kernel='fast' must be one of"),
        (dict(head_dim=7), "head_dim=7 must be a positive even number"),
        (dict(hidden_size=32, num_heads=4, gla_expand_k=0.1), "gla_expand_k=0.1 gives a GLA width of 3"),
        (dict(gla_gate_logit_normalizer=0.0), "gla_gate_logit_normalizer must be > 0"),
        (
            dict(hidden_size=32, num_heads=4, slstm_num_heads=5),
            "slstm_num_heads=5 must be positive and divide",
        ),
        (dict(vocab_size=0), "vocab_size must be a positive whole number"),
        (dict(hidden_size="abc"), "hidden_size must be a positive whole number, got 'abc'"),
        (dict(num_heads=2.5), "num_heads must be a positive whole number, got 2.5"),
        (dict(rope_theta="big"), "rope_theta must be a number, got 'big'"),
    ],
)
def test_bad_config_raises_one_clear_error(fields, message):
    base = dict(hidden_size=32, num_hidden_layers=2, num_heads=4)
    base.update(fields)
    with pytest.raises(ValueError, match=message):
        GatedLMConfig(**base)


def test_bad_config_json_fails_on_load(tmp_path):
    GatedLMConfig(hidden_size=32, num_hidden_layers=2, num_heads=4).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["mixer_types"] = ["gla", "transformer"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="transformer"):
        GatedLMConfig.from_pretrained(tmp_path)
