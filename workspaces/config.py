"""Configuration of the addition study (``reasonkit train-workspace``), arXiv 2503.01906.

Fields left at ``None`` take the variant's default (:data:`VARIANT_DEFAULTS`), resolved in
``__post_init__`` so that ``config.json`` in the run directory records the values actually used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reasonkit.workspaces.addition import VARIANTS

MODELS: tuple[str, ...] = ("gw", "lstm", "transformer")

#: Per-variant defaults: the splits and the training length that fits in about a minute per run.
VARIANT_DEFAULTS: dict[str, dict[str, int]] = {
    "onehot": {"addend_range": 10, "extrapolation_range": 20, "code_size": 40, "steps": 1000},
    "images": {"addend_range": 7, "extrapolation_range": 10, "code_size": 20, "steps": 1500},
}

#: Fields that change what a run computes; a run directory refuses to resume under other values.
RESULT_FIELDS: tuple[str, ...] = (
    "variant", "addend_range", "extrapolation_range", "holdout_fraction", "split_seed", "code_size",
    "eval_draws", "steps", "batch_size", "lr", "weight_decay", "controller_hidden", "controller_cell",
    "controller_view", "increment", "tau_start", "tau_end", "straight_through", "timeout_credit",
    "train_max_steps", "eval_max_steps", "lstm_embed", "lstm_hidden", "transformer_dim",
    "transformer_layers", "transformer_heads", "encoder_steps",
)  # fmt: skip


@dataclass
class WorkspaceConfig:
    """Train the Global Workspace router and its LSTM / Transformer baselines on addition."""

    variant: Literal["onehot", "images"] = field(
        default="onehot",
        metadata={
            "help": "onehot: hand-designed modules on one-hot numbers; images: learned modules on 8x8 digits"
        },
    )
    out: str = field(default="", metadata={"help": "run directory (required); an existing one is resumed"})
    models: tuple[str, ...] = field(default=MODELS, metadata={"help": f"models to train, among {MODELS}"})
    seeds: tuple[int, ...] = field(
        default=(0, 1, 2), metadata={"help": "training seeds (>= 3 for mean ± std)"}
    )
    addend_range: int | None = field(
        default=None, metadata={"help": "R: training addends lie in [0, R) (default 10 onehot, 7 images)"}
    )
    extrapolation_range: int | None = field(
        default=None,
        metadata={"help": "E: extrapolation addends lie in [R, E) (default 20 onehot, 10 images)"},
    )
    holdout_fraction: float = field(
        default=0.2, metadata={"help": "fraction of pairs in [0, R)^2 held out as the interpolation split"}
    )
    split_seed: int = field(default=1234, metadata={"help": "seed of the fixed splits (pairs and images)"})
    code_size: int | None = field(
        default=None,
        metadata={"help": "length of the number line a code spans (default 40 onehot, 20 images)"},
    )
    eval_draws: int = field(
        default=10, metadata={"help": "images: image pairs drawn per (a, b) for evaluation"}
    )
    steps: int | None = field(
        default=None,
        metadata={"help": "optimiser steps per model and seed (default 1000 onehot, 1500 images)"},
    )
    batch_size: int = field(default=128, metadata={"help": "pairs per batch (shared by all models)"})
    lr: float = field(default=3e-3, metadata={"help": "AdamW learning rate (all models)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (all models)"})
    controller_hidden: int = field(default=16, metadata={"help": "hidden size of the router's controller"})
    controller_cell: Literal["lstm", "gru"] = field(default="lstm", metadata={"help": "controller cell"})
    controller_view: Literal["instruction", "all"] = field(
        default="instruction",
        metadata={"help": "workspace slots the controller reads: the addend slot only, or all (ablation)"},
    )
    increment: Literal["conv", "mlp"] = field(
        default="conv",
        metadata={
            "help": "images: learned increment, translation-equivariant shift (conv) or an MLP (ablation)"
        },
    )
    tau_start: float = field(default=1.0, metadata={"help": "Gumbel-softmax temperature at the first step"})
    tau_end: float = field(
        default=0.3, metadata={"help": "temperature at the last step (geometric schedule)"}
    )
    straight_through: bool = field(
        default=False,
        metadata={"help": "straight-through hard gates while training (default: relaxed gates)"},
    )
    timeout_credit: float = field(
        default=0.1, metadata={"help": "credit for the final workspace when an episode never halts"}
    )
    train_max_steps: int | None = field(
        default=None, metadata={"help": "router steps per training episode (default R + 2)"}
    )
    eval_max_steps: int | None = field(
        default=None, metadata={"help": "router steps per evaluation episode (default E + 2)"}
    )
    lstm_embed: int = field(default=32, metadata={"help": "LSTM baseline: embedding width"})
    lstm_hidden: int = field(default=64, metadata={"help": "LSTM baseline: hidden size"})
    transformer_dim: int = field(default=32, metadata={"help": "Transformer baseline: model width"})
    transformer_layers: int = field(default=2, metadata={"help": "Transformer baseline: encoder layers"})
    transformer_heads: int = field(default=4, metadata={"help": "Transformer baseline: attention heads"})
    encoder_steps: int = field(default=600, metadata={"help": "images: steps to pretrain the digit encoder"})
    eval_every: int = field(default=100, metadata={"help": "evaluate, log and checkpoint every N steps"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (keep 1 on a shared machine)"})

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not self.out:
            raise ValueError("out is required: pass --out DIR (a new or an existing run directory)")
        self.models, self.seeds = tuple(self.models), tuple(int(s) for s in self.seeds)
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ValueError(f"models must be a non-empty subset of {MODELS}, got {list(self.models)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {list(self.seeds)}")
        for name, value in VARIANT_DEFAULTS[self.variant].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        assert self.addend_range is not None and self.extrapolation_range is not None
        if self.train_max_steps is None:
            self.train_max_steps = self.addend_range + 2
        if self.eval_max_steps is None:
            self.eval_max_steps = self.extrapolation_range + 2
        if self.variant == "images" and self.extrapolation_range > 10:
            raise ValueError(
                f"images are single digits: extrapolation_range must be <= 10, got {self.extrapolation_range}"
            )
        positive = ("steps", "batch_size", "controller_hidden", "eval_every", "threads", "eval_draws",
                    "train_max_steps", "eval_max_steps", "encoder_steps")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.tau_start > 0 and self.tau_end > 0):
            raise ValueError(
                f"lr, tau_start and tau_end must be > 0, got {self.lr}, {self.tau_start}, {self.tau_end}"
            )
        if not 0 <= self.timeout_credit <= 1:
            raise ValueError(f"timeout_credit must be in [0, 1], got {self.timeout_credit}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

    def tau(self, step: int) -> float:
        """Gumbel-softmax temperature at ``step``: geometric from tau_start to tau_end."""
        assert self.steps is not None
        return self.tau_start * (self.tau_end / self.tau_start) ** (step / max(1, self.steps))
