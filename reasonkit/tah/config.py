"""``TaHConfig``: what a Think-at-Hard model is, beside its weights (saved as ``tah.json``).

Defaults are the reference's (thu-nics/TaH at 1e07bc3; file:line in each help text, as read for
../shared/research/whitebox-methods-deep.md §1). Terms: a token's *depth* is the number of passes it
got (1 = the plain model, 2 = one latent iteration — the paper's "iterations"); the white-box layer
numbers the same passes 0, 1, … (its ``depth=`` argument is depth − 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Route = Literal["decider", "oracle", "always", "never"]
Attention = Literal["duo", "root", "same"]
Eligible = Literal["generated", "all"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DeciderSpec:
    """The iteration decider's shape (reference: MLPIterDecider, tah/model/iter_decider.py:193-301)."""

    layers: tuple[int, ...] | None = field(
        default=None,
        metadata=_help(
            "hidden-state indices it reads (0 = embeddings, i = output of layer i); default: the reference's "
            "[2, 10, 18, 26] of 28 layers scaled to the model (builtin: 1 3 5 7) "
            "(qwen3_1.7/sft_tah_step2.yaml:16-25)"
        ),
    )
    hidden: int | None = field(
        default=None,
        metadata=_help(
            "width of its residual blocks; default hidden_size / 4, at least 64 (reference: 512 for a 2048-wide "
            "model, 256 for 1024)"
        ),
    )
    blocks: int = field(default=6, metadata=_help("residual blocks (reference: hidden_dims [512] x 6)"))
    expansion: int = field(default=4, metadata=_help("inner expansion of each block (reference: 4)"))
    dropout: float = field(default=0.1, metadata=_help("dropout inside the blocks (reference: 0.1)"))

    def __post_init__(self) -> None:
        if self.layers is not None:
            self.layers = tuple(int(i) for i in self.layers)
            if not self.layers or any(i < 0 for i in self.layers):
                raise ValueError(f"decider layers must be hidden-state indices >= 0, got {list(self.layers)}")
        if self.hidden is not None and self.hidden < 1:
            raise ValueError(f"decider hidden width must be >= 1, got {self.hidden}")
        if self.blocks < 0 or self.expansion < 1 or not 0 <= self.dropout < 1:
            raise ValueError("decider blocks must be >= 0, expansion >= 1 and 0 <= dropout < 1")

    def resolved_layers(self, num_layers: int) -> tuple[int, ...]:
        layers = self.layers or default_decider_layers(num_layers)
        bad = [i for i in layers if i > num_layers]
        if bad:
            raise ValueError(
                f"decider layers {bad} do not exist: a {num_layers}-layer model has hidden states 0..{num_layers}"
            )
        return layers

    def resolved_hidden(self, hidden_size: int) -> int:
        return self.hidden or max(64, hidden_size // 4)


def default_decider_layers(num_layers: int) -> tuple[int, ...]:
    """The reference's layers 2, 10, 18, 26 of a 28-layer model, at the same relative depths."""
    picked = sorted({max(1, round(num_layers * i / 28)) for i in (2, 10, 18, 26)})
    return tuple(min(i, num_layers) for i in picked)


@dataclass
class TaHConfig:
    """How a Think-at-Hard model runs. ``route`` decides which tokens get another pass."""

    max_depth: int = field(
        default=2,
        metadata=_help("most passes a token gets (reference max_iter: 2 in every recipe; 1 = plain)"),
    )
    route: Route = field(
        default="decider",
        metadata=_help(
            "who sends a token on: decider (the trained MLP), oracle (labels, training only), always "
            "(every token: the Always-d baseline), never (the plain first pass)"
        ),
    )
    threshold: float = field(
        default=0.9,
        metadata=_help(
            "the decider continues when sigmoid(logit) > threshold (reference eval 0.9, train 0.8: "
            "qwen3_1.7/eval_tah.yaml:30). A decider trained with positive weight w fires when the true "
            "probability of a hard token exceeds t / (t + w(1 - t)): 0.9 with w = 5.4 is p > 0.625"
        ),
    )
    top_k: int = field(
        default=100,
        metadata=_help(
            "the next pass's input is softmax over the top-k accumulated logits times their embedding rows, "
            "at the same position (reference input_updater topk 100: tah_model.py:57-75, 349); capped at V"
        ),
    )
    attention: Attention = field(
        default="duo",
        metadata=_help(
            "what a deeper pass attends to: duo (every shallower and equal depth, the method), root (depth 1 "
            "only) or same (its own depth only) — the paper's ablations (4ba7145 recurrent_transformer.py:937)"
        ),
    )
    residual: bool = field(
        default=True,
        metadata=_help("logits add up across passes: z_d = z_(d-1) + head(pass d) (tah_model.py:628)"),
    )
    lora: bool = field(
        default=True, metadata=_help("LoRA adapters active from the second pass on (tah_model.py:581)")
    )
    lora_r: int = field(default=8, metadata=_help("LoRA rank (reference: 32 at 1.7B, 16 at 0.6B)"))
    lora_alpha: int = field(default=16, metadata=_help("LoRA alpha (reference: 2 x rank)"))
    lora_dropout: float = field(default=0.1, metadata=_help("LoRA dropout (reference: 0.1)"))
    eligible: Eligible = field(
        default="generated",
        metadata=_help(
            "which positions may iterate: generated (positions that predict a generated or target token; "
            "prompt-internal positions never do, as the training labels say) or all (Always-d baselines)"
        ),
    )
    decider: DeciderSpec = field(default_factory=DeciderSpec, metadata=_help("the decider's shape"))

    def __post_init__(self) -> None:
        if isinstance(self.decider, dict):
            self.decider = DeciderSpec(**self.decider)
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1 (1 = the plain model), got {self.max_depth}")
        if self.route not in ("decider", "oracle", "always", "never"):
            raise ValueError(f"route must be decider, oracle, always or never, got {self.route!r}")
        if self.attention not in ("duo", "root", "same"):
            raise ValueError(f"attention must be duo, root or same, got {self.attention!r}")
        if self.eligible not in ("generated", "all"):
            raise ValueError(f"eligible must be generated or all, got {self.eligible!r}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.top_k < 1 or self.lora_r < 1 or self.lora_alpha < 1 or not 0 <= self.lora_dropout < 1:
            raise ValueError("top_k, lora_r and lora_alpha must be >= 1 and 0 <= lora_dropout < 1")

    def attended(self, depth: int) -> tuple[int, ...]:
        """White-box depths a pass at white-box depth ``depth`` >= 1 attends to."""
        if self.attention == "root":
            return (0,)
        if self.attention == "same":
            return (depth,)
        return tuple(range(depth + 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tah.json") -> TaHConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}; expected some of {sorted(names)}")
        values = dict(data)
        if isinstance(values.get("decider"), dict):
            spec = dict(values["decider"])
            if spec.get("layers") is not None:
                spec["layers"] = tuple(spec["layers"])
            values["decider"] = DeciderSpec(**spec)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc
