"""The iteration decider: will this token's prediction be wrong? One logit per token.

Reference: ``MLPIterDecider`` (thu-nics/TaH, tah/model/iter_decider.py:127-301). Features are the
hidden states of a few layers of the pass that produced the token's logits, concatenated, and the
sorted top-k values of its accumulated logits projected to the model width (values only, no token
ids). They go through an input projection, residual blocks (LayerNorm -> Linear(x expansion) -> GELU
-> Dropout -> Linear -> Dropout, added back), a final LayerNorm and Linear(-> 1). Kaiming-normal
weights and zero biases, as the reference. It continues a token when sigmoid(logit) > threshold.

Saved as ``decider.safetensors`` plus ``decider.json`` (its shape): no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS, CONFIG = "decider.safetensors", "decider.json"


class _Block(nn.Module):
    def __init__(self, width: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, width * expansion)
        self.down = nn.Linear(width * expansion, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.down(self.drop(nn.functional.gelu(self.up(self.norm(x))))))


class IterationDecider(nn.Module):
    """hidden states of ``layers`` (each (N, model_width)) and top-k logit values (N, k) -> (N,) logits."""

    def __init__(
        self,
        model_width: int,
        layers: Sequence[int],
        top_k: int,
        hidden: int,
        blocks: int = 6,
        expansion: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.shape: dict[str, Any] = {
            "model_width": model_width,
            "layers": [int(i) for i in layers],
            "top_k": top_k,
            "hidden": hidden,
            "blocks": blocks,
            "expansion": expansion,
            "dropout": dropout,
        }
        self.layers = tuple(int(i) for i in layers)
        self.top_k = top_k
        self.logit_proj = nn.Linear(top_k, model_width)
        self.input = nn.Linear(model_width * (len(self.layers) + 1), hidden)
        self.blocks = nn.ModuleList([_Block(hidden, expansion, dropout) for _ in range(blocks)])
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 1)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, hidden_states: dict[int, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        """(..., width·(layers+1)): the chosen hidden states and the projected top-k logit values."""
        top = logits.float().topk(self.top_k, dim=-1).values.to(self.logit_proj.weight.dtype)
        parts = [hidden_states[i].to(self.logit_proj.weight.dtype) for i in self.layers]
        return torch.cat([*parts, self.logit_proj(top)], dim=-1)

    def forward(self, hidden_states: dict[int, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        """Continue-logits (...,) for tokens whose states are ``hidden_states[i]`` (..., width) and whose
        accumulated logits are ``logits`` (..., V)."""
        x = self.input(self.features(hidden_states, logits))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)).squeeze(-1)  # type: ignore[no-any-return]

    # ---- files ----------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS)
        )
        (directory / CONFIG).write_text(json.dumps(self.shape, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, model_width: int) -> IterationDecider:
        from safetensors.torch import load_file

        config_path, weights_path = directory / CONFIG, directory / WEIGHTS
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} is missing: a Think-at-Hard directory whose route is 'decider' holds {CONFIG} and "
                    f"{WEIGHTS} (written by reasonkit train-tah after its decider stage)"
                )
        try:
            shape = json.loads(config_path.read_text(encoding="utf-8"))
            decider = cls(**shape)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{config_path} does not describe a decider: {exc}") from None
        if decider.shape["model_width"] != model_width:
            raise ValueError(
                f"{config_path}: the decider reads {decider.shape['model_width']}-wide hidden states but the "
                f"model is {model_width} wide; it belongs to another model"
            )
        try:
            decider.load_state_dict(load_file(str(weights_path)))
        except RuntimeError as exc:
            raise ValueError(f"{weights_path} does not match {config_path}: {exc}") from None
        return decider.eval()
