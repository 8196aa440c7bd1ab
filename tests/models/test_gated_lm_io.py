"""GatedLM persistence and training hooks: safetensors round trip, Auto classes, peft LoRA, checkpointing."""

from __future__ import annotations

import pytest
import torch
from gated_lm_helpers import VOCAB, make_model, tiny_config
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import reasonkit.models
from reasonkit.models import GatedLMConfig, GatedLMForCausalLM, GatedLMModel
from reasonkit.models.gated_lm import register

MIXED = ["gla", "attn", "slstm"]


def _ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_round_trip_through_the_auto_classes(tmp_path, tie):
    model = make_model(MIXED, dtype=torch.float32, tie_word_embeddings=tie)
    if tie:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    register()  # idempotent: importing reasonkit.models already registered the classes
    assert isinstance(AutoConfig.from_pretrained(tmp_path), GatedLMConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is GatedLMForCausalLM
    loaded.eval()
    ids = _ids(2, 9)
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert (loaded.lm_head.weight is loaded.model.embed_tokens.weight) == tie
    # the rotary table is not stored; it must be rebuilt after loading on the meta device
    torch.testing.assert_close(loaded.model.rotary.inv_freq, model.model.rotary.inv_freq)
    backbone = AutoModel.from_pretrained(tmp_path)
    assert type(backbone) is GatedLMModel
    torch.testing.assert_close(
        backbone(ids).last_hidden_state, model.model(ids).last_hidden_state, rtol=0, atol=0
    )


def test_models_package_exposes_the_public_names():
    assert reasonkit.models.GatedLMForCausalLM is GatedLMForCausalLM
    assert set(reasonkit.models.__all__) >= {
        "GatedLMConfig",
        "GatedLMModel",
        "GatedLMForCausalLM",
        "GatedLMCache",
    }


def test_lora_attaches_by_module_name_and_training_reduces_loss():
    torch.manual_seed(0)
    base = GatedLMForCausalLM(tiny_config(MIXED))
    targets = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "g_proj",
        "in_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    lora_params = {n for n, p in model.named_parameters() if p.requires_grad}
    assert lora_params and all("lora_" in n for n in lora_params)
    wrapped = {n.split(".lora_")[0] for n in lora_params}
    for name in (
        "layers.0.mixer.q_proj",
        "layers.1.mixer.o_proj",
        "layers.2.mixer.in_proj",
        "layers.2.mlp.up_proj",
    ):
        assert any(w.endswith(name) for w in wrapped), name
    ids = _ids(4, 16)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    frozen = dict(base.named_parameters())["model.embed_tokens.weight"]
    assert not frozen.requires_grad


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = _ids(2, 10)
    grads = []
    for checkpointing in (False, True):
        model = make_model(MIXED)
        if checkpointing:
            model.activation_checkpointing_enable()
        model.train()
        runs: list[int] = []
        model.model.layers[1].mixer.register_forward_hook(lambda *_, runs=runs: runs.append(1))
        model(ids, labels=ids, use_cache=False).loss.backward()
        assert len(runs) == (2 if checkpointing else 1)  # recomputed in the backward pass
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)
