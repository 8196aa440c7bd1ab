"""LoRA adapters (peft) that act only from a token's second pass on.

The first pass runs the base weights — its logits, and the hidden states the decider reads, are the
plain model's (reference: ``_set_lora_enabled(iter_depth >= 1)``, tah_model.py:397-404, 581). The
adapters are injected once into every linear layer but the LM head (peft's ``all-linear``), and
:func:`adapters` switches them for one pass.

peft's own switch (``enable_adapters(False)``) also flips ``requires_grad`` of the adapter weights,
which would unfreeze a frozen adapter in stage 2 of training; :func:`adapters` sets only the flag
every LoRA layer reads in its forward (``_disable_adapters``, peft ≥ 0.5). A test (non-zero adapters
leave the first pass unchanged and change the second) fails if peft ever renames it.

Saved as ``adapter.safetensors`` (the adapter weights, peft's key names) and ``adapter.json`` (the
LoraConfig fields): no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS, CONFIG = "adapter.safetensors", "adapter.json"


def lora_layers(model: nn.Module) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def inject_lora(model: nn.Module, r: int, alpha: int, dropout: float) -> list[Any]:
    """Add LoRA to every linear layer of ``model`` except its output head; adapters start switched off
    (B = 0, so they change nothing until trained). Returns the LoRA layers."""
    from peft import LoraConfig, inject_adapter_in_model

    if lora_layers(model):
        raise ValueError("this model already carries LoRA adapters; inject them once")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear")
    trainable = {id(p): p.requires_grad for p in model.parameters()}
    inject_adapter_in_model(config, model)
    # peft freezes the base weights; Think-at-Hard trains them too (stage 1), so restore what they were
    for p in model.parameters():
        p.requires_grad_(trainable.get(id(p), True))
    layers = lora_layers(model)
    for layer in layers:
        layer._disable_adapters = True
    return layers


@contextmanager
def adapters(layers: list[Any], on: bool) -> Iterator[None]:
    """Run the block with the LoRA ``layers`` on (or off), then restore what they were."""
    before = [layer._disable_adapters for layer in layers]
    for layer in layers:
        layer._disable_adapters = not on
    try:
        yield
    finally:
        for layer, was in zip(layers, before):
            layer._disable_adapters = was


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights (peft's key names)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s own weights without the adapters, under the names it had before injection."""
    state = {}
    for key, value in model.state_dict().items():
        if "lora_" in key:
            continue
        state[key.replace(".base_layer.", ".")] = value
    return state


def save_lora(model: nn.Module, directory: Path, r: int, alpha: int, dropout: float) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(lora_state(model), str(directory / WEIGHTS))
    (directory / CONFIG).write_text(
        json.dumps({"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": "all-linear"}),
        encoding="utf-8",
    )


def load_lora(model: nn.Module, directory: Path) -> list[Any]:
    """Inject the adapters saved in ``directory`` into ``model`` (switched off); returns the layers."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: a Think-at-Hard directory with LoRA holds lora/{CONFIG} and lora/{WEIGHTS} "
                "(written by reasonkit train-tah); point at the directory train-tah exported"
            )
    try:
        spec = json.loads(config_path.read_text(encoding="utf-8"))
        r, alpha, dropout = int(spec["r"]), int(spec["lora_alpha"]), float(spec["lora_dropout"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{config_path} is not a LoRA description (r, lora_alpha, lora_dropout): {exc}"
        ) from None
    layers = inject_lora(model, r, alpha, dropout)
    weights = load_file(str(weights_path))
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", []) or []
    if unexpected:
        raise ValueError(f"{weights_path} holds weights this model has no place for: {unexpected[:3]} ...")
    return layers
