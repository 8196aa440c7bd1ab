"""``TrainTaHConfig``: every knob of ``reasonkit train-tah``, each with its help text.

Reference values (thu-nics/TaH recipes, ../shared/research/whitebox-methods-deep.md §1.5) are quoted
in the help; the defaults are sized for the built-in 3.5 M-parameter model on two CPU cores (a few
hundred steps of 16 pairs: tens of minutes), where the reference trains a 1.7 B model for 5 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reasonkit.backends.options import BackendOptions
from reasonkit.tah.config import DeciderSpec, TaHConfig


def _help(text: str) -> dict[str, str]:
    return {"help": text}


#: Fields that decide what a run trains: a resumed run must keep them (steps may change).
IDENTITY_FIELDS: tuple[str, ...] = (
    "model",
    "reference",
    "problems",
    "seed",
    "route",
    "max_depth",
    "attention",
    "residual",
    "lora",
    "lora_r",
    "lora_alpha",
    "top_k",
    "batch_size",
    "lr",
    "decider_lr",
    "decider_layers",
    "decider_hidden",
    "decider_blocks",
)


@dataclass
class TrainTaHConfig(BackendOptions):
    """Train Think-at-Hard on arith chains of thought (reasonkit train-tah): stage 1 trains the backbone
    and its LoRA adapters with oracle depths, stage 2 the decider; OUT/tah is the trained model
    (load it as --model tah:OUT/tah). Rerunning with the same --out continues where it stopped."""

    out: str = field(
        default="runs/tah", metadata=_help("run directory (checkpoint, metrics, plots, OUT/tah)")
    )
    reference: str | None = field(
        default=None,
        metadata=_help(
            "the fixed model whose greedy mistakes on the gold text label the hard tokens (default: --model "
            "as it is before training; the reference labels with a fixed model, an on-policy oracle collapsed)"
        ),
    )
    problems: Literal["arith", "arith-hard"] = field(
        default="arith-hard",
        metadata=_help(
            "training text: CoT chains of this arith problem set (arith-hard: 4-digit operands, 2-digit "
            "factors — the built-in model misses 1.37 %% of its gold tokens, against 0.14 %% on arith)"
        ),
    )
    seed: int = field(default=420, metadata=_help("seed of the data stream and new weights (reference: 420)"))
    # ---- the method
    route: Literal["oracle", "always", "never"] = field(
        default="oracle",
        metadata=_help(
            "stage-1 routing: oracle (Think-at-Hard: hard tokens take max-depth passes), always (every token: "
            "the Always-d baseline), never (plain continued fine-tuning: the Standard baseline)"
        ),
    )
    max_depth: int = field(default=2, metadata=_help("most passes per token (reference: 2)"))
    attention: Literal["duo", "root", "same"] = field(
        default="duo", metadata=_help("deeper passes attend to: duo (the method), root or same (ablations)")
    )
    residual: bool = field(default=True, metadata=_help("residual logits across passes (ablation: false)"))
    lora: bool = field(default=True, metadata=_help("LoRA from the second pass on (ablation: false)"))
    lora_r: int = field(default=8, metadata=_help("LoRA rank (reference: 32 at 1.7B, 16 at 0.6B)"))
    lora_alpha: int = field(default=16, metadata=_help("LoRA alpha (reference: 2 x rank)"))
    lora_dropout: float = field(default=0.1, metadata=_help("LoRA dropout (reference 0.1)"))
    top_k: int = field(default=100, metadata=_help("top-k of the soft next-pass input (reference 100)"))
    # ---- stage 1
    steps: int = field(default=300, metadata=_help("stage-1 optimizer steps (reference: 5 epochs of OpenR1)"))
    batch_size: int = field(
        default=16, metadata=_help("pairs per step (reference: 1 x 16 accumulation x 8 GPUs)")
    )
    max_tokens: int = field(
        default=8192,
        metadata=_help("padded tokens per forward: a step is cut into micro-batches of this size"),
    )
    lr: float = field(default=3e-4, metadata=_help("stage-1 peak learning rate (reference 4e-5 at 1.7B)"))
    min_lr_ratio: float = field(
        default=0.1, metadata=_help("cosine floor as a fraction of the peak (reference 0.1)")
    )
    warmup_ratio: float = field(default=0.03, metadata=_help("share of steps warming up (reference 3 %%)"))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (reference 0.01)"))
    grad_clip: float = field(default=0.2, metadata=_help("gradient-norm clip (reference 0.2; 0 = off)"))
    # ---- stage 2
    decider_steps: int = field(
        default=150, metadata=_help("stage-2 steps training the decider, backbone frozen (0: no decider)")
    )
    decider_lr: float = field(default=1e-3, metadata=_help("stage-2 learning rate (reference 3e-5 at 1.7B)"))
    pos_weight: float | None = field(
        default=None,
        metadata=_help(
            "BCE weight of hard tokens (reference 5.4 at 1.7B); default N_easy / N_hard of the validation "
            "labels. It shifts what a threshold means: see --threshold"
        ),
    )
    threshold: float = field(
        default=0.9,
        metadata=_help(
            "the saved model's decision threshold (reference eval 0.9, train 0.8). With pos_weight w the "
            "decider fires when the true hard probability exceeds t / (t + w (1 - t))"
        ),
    )
    decider_layers: tuple[int, ...] | None = field(
        default=None,
        metadata=_help("hidden-state indices the decider reads (default: scaled from the reference)"),
    )
    decider_hidden: int | None = field(
        default=None, metadata=_help("decider width (default hidden_size / 4, >= 64)")
    )
    decider_blocks: int = field(default=6, metadata=_help("decider residual blocks (reference 6)"))
    # ---- bookkeeping
    val_pairs: int = field(default=256, metadata=_help("validation-split pairs scored at each validation"))
    val_every: int = field(default=50, metadata=_help("steps between validations"))
    log_every: int = field(default=10, metadata=_help("steps between training-metric records"))
    save_every: int = field(default=50, metadata=_help("steps between checkpoints"))
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata=_help("auto = cuda when available")
    )
    max_minutes: float | None = field(
        default=None, metadata=_help("wall-clock limit: save and exit cleanly (rerun to continue)")
    )
    stop_at: int | None = field(
        default=None,
        metadata=_help(
            "end this invocation after this many optimizer steps of both stages (rerun to continue)"
        ),
    )
    progress: bool = field(default=True, metadata=_help("show a progress bar"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decider_layers is not None:
            self.decider_layers = tuple(int(i) for i in self.decider_layers)
        for name in ("max_depth", "lora_r", "lora_alpha", "top_k", "steps", "batch_size", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("val_every", "log_every", "save_every", "decider_blocks"):
            if getattr(self, name) < (0 if name == "decider_blocks" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.decider_steps < 0 or self.val_pairs < 0:
            raise ValueError("--decider-steps and --val-pairs must be >= 0")
        if self.route == "never" and self.max_depth != 1:
            raise ValueError("--route never is the one-pass baseline: give --max-depth 1 with it")
        if self.route != "never" and self.max_depth < 2:
            raise ValueError(f"--route {self.route} iterates: give --max-depth 2 or more (or --route never)")
        if not 0 < self.lr < 1 or not 0 < self.decider_lr < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("need 0 < lr, decider_lr < 1 and 0 <= min_lr_ratio <= 1")
        if not 0 <= self.warmup_ratio < 1 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("need 0 <= warmup_ratio < 1, weight_decay >= 0 and grad_clip >= 0")
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise ValueError(f"--pos-weight must be > 0 (or omitted), got {self.pos_weight}")
        if not 0 <= self.threshold <= 1 or not 0 <= self.lora_dropout < 1:
            raise ValueError("need 0 <= threshold <= 1 and 0 <= lora_dropout < 1")
        if self.stop_at is not None and self.stop_at < 1:
            raise ValueError(f"--stop-at must be >= 1 (or omitted), got {self.stop_at}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"--max-minutes must be > 0 (or omitted), got {self.max_minutes}")

    @property
    def trains_decider(self) -> bool:
        return self.route == "oracle" and self.decider_steps > 0

    def tah_config(self) -> TaHConfig:
        """The model this run trains, as it runs once trained."""
        route = "decider" if self.trains_decider else self.route
        return TaHConfig(
            max_depth=self.max_depth,
            route=route,  # type: ignore[arg-type]
            threshold=self.threshold,
            top_k=self.top_k,
            attention=self.attention,
            residual=self.residual,
            lora=self.lora and self.max_depth > 1,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            eligible="all" if self.route == "always" else "generated",
            decider=DeciderSpec(
                layers=self.decider_layers, hidden=self.decider_hidden, blocks=self.decider_blocks
            ),
        )
