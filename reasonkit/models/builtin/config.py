"""``TrainLMConfig``: every knob of ``reasonkit train-lm``, each with its help text.

The defaults are the recipe of the shipped checkpoint (``reasonkit/models/zoo/builtin``; its
``reasonkit.json`` records the exact config it was trained with). docs/builtin-model.md explains the
choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Fields that decide the model and its data stream: a resumed run must keep them unchanged.
#: ``steps`` is not among them: a longer or shorter --steps on resume reshapes the rest of the cosine
#: schedule (metrics.jsonl records the learning rate actually used).
IDENTITY_FIELDS: tuple[str, ...] = (
    "seed",
    "finetune_from",
    "extra_data",
    "extra_share",
    "pack",
    "hidden_size",
    "num_layers",
    "layer_types",
    "num_heads",
    "num_kv_heads",
    "vocab_size",
    "batch_size",
    "lr",
    "min_lr_ratio",
    "warmup_steps",
    "weight_decay",
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainLMConfig:
    """Train the built-in GatedLM on a mixture of every arith block task (reasonkit train-lm).

    Rerunning with the same --out continues from the last checkpoint.
    """

    out: str = field(default="runs/train-lm", metadata=_help("run directory (checkpoint, metrics, plots)"))
    export: str | None = field(
        default=None,
        metadata=_help(
            "also write the final loadable model directory here (the run always keeps one in OUT/model)"
        ),
    )
    seed: int = field(default=0, metadata=_help("seed of the initial weights and of the training stream"))
    init_from: str | None = field(
        default=None,
        metadata=_help(
            "start a new run from an exported model directory (OUT/model, --export DIR, the shipped "
            "builtin) at the step its reasonkit.json records: same data stream and schedule, fresh "
            "optimizer (the rate re-warms over warmup_steps); for when checkpoint.pt is lost"
        ),
    )
    finetune_from: str | None = field(
        default=None,
        metadata=_help(
            "start a new schedule (step 0, fresh optimizer) from an exported model's weights, e.g. builtin's "
            "directory reasonkit/models/zoo/builtin: continued training such as the v3 model (docs/builtin-model.md)"
        ),
    )
    extra_data: str | None = field(
        default=None,
        metadata=_help(
            "JSONL of extra prompt/target pairs mixed into the stream (e.g. `reasonkit eval own-mistakes "
            "--pairs FILE`: targets built from the model's own steps)"
        ),
    )
    extra_share: float = field(
        default=0.3,
        metadata=_help("share of each step's pairs drawn from --extra-data (the rest: the stream)"),
    )
    pack: str = field(
        default="compact",
        metadata=_help(
            "prompt pack the stream's prompts are rendered with, named in the export's reasonkit.json "
            "(compact: v1-v3; compact2, whose summarize prompt ends with a separator: v4; compact3, "
            "compact2 with a refine that writes its digits least significant first, for round 6)"
        ),
    )
    # ---- model
    hidden_size: int = field(default=192, metadata=_help("width of the residual stream"))
    num_layers: int = field(default=8, metadata=_help("number of decoder layers"))
    layer_types: tuple[str, ...] = field(
        default=("gla", "attn", "gla", "attn", "gla", "attn", "gla", "attn"),
        metadata=_help("mixer of each layer: gla | attn | slstm (one per layer)"),
    )
    num_heads: int = field(default=6, metadata=_help("heads of every mixer"))
    num_kv_heads: int = field(default=2, metadata=_help("key/value heads of attention layers"))
    vocab_size: int = field(
        default=128, metadata=_help("embedding rows (>= the tokenizer's 114 tokens; a multiple of 8)")
    )
    # ---- optimisation
    steps: int = field(default=2400, metadata=_help("optimizer steps (the learning-rate schedule's length)"))
    batch_size: int = field(default=1024, metadata=_help("training pairs per optimizer step"))
    max_tokens: int = field(
        default=65536,
        metadata=_help(
            "padded tokens per forward pass: a step's pairs are sorted by length and cut into "
            "micro-batches of at most this many tokens (gradients accumulate over them)"
        ),
    )
    bucket_ratio: float = field(
        default=0.75,
        metadata=_help(
            "a micro-batch only holds rows at least this fraction of its longest row's length "
            "(less padding, more forward passes; lower it on a GPU where each pass has a fixed cost)"
        ),
    )
    lr: float = field(default=2e-3, metadata=_help("peak learning rate (AdamW)"))
    min_lr_ratio: float = field(default=0.1, metadata=_help("final learning rate as a fraction of --lr"))
    warmup_steps: int = field(default=150, metadata=_help("linear warm-up steps before the cosine decay"))
    weight_decay: float = field(default=0.1, metadata=_help("AdamW weight decay of matrices (not norms)"))
    grad_clip: float = field(default=1.0, metadata=_help("clip the gradient norm to this (0: off)"))
    # ---- machine
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata=_help("auto = cuda when available, else cpu")
    )
    bf16: bool = field(
        default=False,
        metadata=_help(
            "bfloat16 autocast on CUDA (ignored on CPU). Off by default: the model is small enough that "
            "float32 with TF32 matmuls costs little more, and autocast needs GatedLM's attention to keep "
            "q/k in v's dtype after the rotary embedding (docs/builtin-model.md)"
        ),
    )
    compile: bool = field(default=False, metadata=_help("torch.compile the model (CUDA; off by default)"))
    threads: int | None = field(
        default=None,
        metadata=_help(
            "torch CPU threads (default: 1 for this small model on the CPU; on 2 idle cores --threads 2 "
            "trains 1.8x faster, on busy ones 1.8x slower: BENCHMARKS.md, CPU threads)"
        ),
    )
    workers: int = field(
        default=-1,
        metadata=_help(
            "data-generation worker processes (the teacher costs ~2 ms per pair on one core); "
            "-1 = one per CPU core minus one, 0 = generate in the training process"
        ),
    )
    max_minutes: float | None = field(
        default=None,
        metadata=_help("wall-clock limit: save a checkpoint, export and exit cleanly when reached"),
    )
    stop_at: int | None = field(
        default=None,
        metadata=_help(
            "end this invocation at this step (the schedule still runs to --steps); rerun to continue"
        ),
    )
    # ---- bookkeeping
    log_every: int = field(default=20, metadata=_help("steps between training-metric records"))
    val_every: int = field(default=250, metadata=_help("steps between validation passes"))
    val_pairs: int = field(default=512, metadata=_help("validation-split pairs scored each pass"))
    save_every: int = field(default=500, metadata=_help("steps between checkpoints (and model exports)"))
    progress: bool = field(default=True, metadata=_help("show a progress bar"))

    def __post_init__(self) -> None:
        self.layer_types = tuple(self.layer_types)
        positive = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "steps", "batch_size")
        for name in (*positive, "max_tokens", "log_every", "val_every", "save_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if len(self.layer_types) != self.num_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries but num_layers is {self.num_layers}; "
                "give one mixer per layer (e.g. --layer-types gla attn gla attn)"
            )
        if not {"gla", "attn"} <= set(self.layer_types):
            raise ValueError(f"the built-in model is a gla + attn hybrid; got layer_types {self.layer_types}")
        if self.vocab_size < 114:
            raise ValueError(f"vocab_size must be >= 114 (the tokenizer's size), got {self.vocab_size}")
        if not 0 < self.lr < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"need 0 < lr < 1 and 0 <= min_lr_ratio <= 1, got {self.lr}, {self.min_lr_ratio}"
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.val_pairs < 0:
            raise ValueError("warmup_steps, weight_decay, grad_clip and val_pairs must be >= 0")
        if not 0 < self.bucket_ratio <= 1:
            raise ValueError(f"bucket_ratio must be in (0, 1], got {self.bucket_ratio}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 (or omitted), got {self.max_minutes}")
        if self.stop_at is not None and self.stop_at <= 0:
            raise ValueError(f"stop_at must be >= 1 (or omitted), got {self.stop_at}")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be >= 1 (or omitted), got {self.threads}")
        if not 0 < self.extra_share <= 1:
            raise ValueError(f"extra_share must be in (0, 1], got {self.extra_share}")
        if self.init_from and self.finetune_from:
            raise ValueError(
                "give --init-from (resume an export's schedule) or --finetune-from (a new one), not both"
            )
        from reasonkit.models.builtin.tokenizer import control_tokens
        from reasonkit.packs import load_pack

        pack = load_pack(self.pack)  # a PackError names the built-in packs
        if tuple(pack.control_tokens) != control_tokens():
            raise ValueError(
                f"pack {self.pack!r} does not use the built-in tokenizer's control tokens "
                f"{' '.join(control_tokens())}; train the built-in model with compact, compact2 or compact3"
            )
        if self.workers < -1:
            raise ValueError(f"workers must be -1 (auto), 0 or a positive count, got {self.workers}")
