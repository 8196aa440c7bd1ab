"""The configuration of ``reasonkit train-hrpo``: one dataclass, one flag per field.

Defaults are the paper's where they transfer (β, τ, r_min/r_max, the three learning rates' roles,
weight decay, AdamW β₂, gradient clipping, warm-up and cosine decay; reference ``hrpo_gsm8k.py``,
deep notes §2.3) and sized for the built-in model on 2 CPU cores where they cannot (LoRA rank, the
LoRA learning rate, prompts per step and steps: the paper trains a 1.5B model on a GPU for ~930 steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reasonkit.backends.options import BackendOptions

#: ``--mode``: the input the model is fed while thinking
MODES = ("hrpo", "grpo", "raw-hidden", "fixed-interp")


@dataclass
class HRPOConfig(BackendOptions):
    """Train a model with HRPO (hybrid latent reasoning by RL, arXiv 2505.18454) or its GRPO control:
    reasonkit train-hrpo --out runs/hrpo  (the built-in model on arith, 6-8 operations)."""

    out: str = field(default="", metadata={"help": "run directory (created; rerun the command to resume)"})
    mode: Literal["hrpo", "grpo", "raw-hidden", "fixed-interp"] = field(
        default="hrpo",
        metadata={
            "help": "hrpo: gated hybrid input while thinking; grpo: plain token inputs (the control, "
            "otherwise the same trainer); raw-hidden: the gates fed the raw last hidden state instead of "
            "the projection; fixed-interp: the projection mixed in with a constant a, no gates (the "
            "paper's two collapse ablations)"
        },
    )
    bench: str = field(
        default="arith",
        metadata={
            "help": "training and test problems: arith (generated, --ops operations), or a benchmark of "
            "reasonkit eval (gsm8k, math500 …, a .jsonl file) with --data; its test set is --test-bench"
        },
    )
    ops: tuple[int, ...] = field(
        default=(6, 7, 8),
        metadata={
            "help": "arith: operation counts of the problems (the shipped model scores about 0.72 on 6-8)"
        },
    )
    data: str | None = field(
        default=None, metadata={"help": "data folder or file of --bench (reasonkit eval's --data)"}
    )
    test_bench: str | None = field(
        default=None,
        metadata={"help": "benchmark of the final test (default: arith's test split, or --bench)"},
    )
    test_problems: int = field(default=400, metadata={"help": "greedy test problems at the end (0: none)"})
    eval_every: int = field(
        default=0, metadata={"help": "steps between greedy evaluations on --eval-problems (0: never)"}
    )
    eval_problems: int = field(
        default=100, metadata={"help": "validation problems of each periodic evaluation"}
    )
    steps: int = field(
        default=120, metadata={"help": "optimizer steps (one rollout batch each: strictly on-policy)"}
    )
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per step, over all processes"})
    group_size: int = field(
        default=8, metadata={"help": "completions per prompt G (paper: 4 for GSM8K, 8 for MATH)"}
    )
    micro_batch: int = field(
        default=32, metadata={"help": "completions per loss forward (gradients accumulate over a step)"}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "completion budget (default: the pack's CoT budget)"}
    )
    temperature: float = field(
        default=0.5, metadata={"help": "sampling temperature τ; h and ℓ use it too (paper 0.5)"}
    )
    top_k: int = field(
        default=50,
        metadata={
            "help": "top-k of the sampling distribution and of h (0: off; the reference's HF default 50)"
        },
    )
    delimiter: str = field(
        default="The answer is",
        metadata={
            "help": "answer delimiter: thinking ends when it appears and the reward needs it exactly once "
            "('The answer is' for the compact and natural packs; the reference's GSM8K prompt uses '####')"
        },
    )
    beta: float = field(
        default=0.005, metadata={"help": "weight of the k3 KL to the base model (paper 0.005)"}
    )
    lr: float = field(
        default=2e-4,
        metadata={
            "help": "LoRA learning rate (paper 5e-6 for Qwen2.5-1.5B; 2e-4 for the 3.5M built-in model)"
        },
    )
    lr_gates: float = field(
        default=1e-4, metadata={"help": "learning rate of the gate linears W_r, W_i (paper 1e-4)"}
    )
    lr_lambda: float = field(default=1e-3, metadata={"help": "learning rate of Λ (paper 1e-3)"})
    weight_decay: float = field(
        default=0.1,
        metadata={
            "help": "AdamW weight decay of every group (paper 0.1; on Λ it raises the hidden share by itself)"
        },
    )
    adam_beta2: float = field(default=0.99, metadata={"help": "AdamW β₂ (paper 0.99)"})
    grad_clip: float = field(default=0.1, metadata={"help": "gradient-norm clip (paper 0.1; 0: off)"})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "linear warm-up share of the steps, then cosine to 0 (paper 0.1)"}
    )
    lora_rank: int | None = field(
        default=None,
        metadata={"help": "LoRA rank (default: 32 for HF models as the paper, 8 for the built-in GatedLM)"},
    )
    lora_alpha: int | None = field(
        default=None, metadata={"help": "LoRA alpha (default: 64 for HF models, 16 for GatedLM)"}
    )
    r_min: float = field(
        default=0.99, metadata={"help": "Λ init: a at r = 1 starts uniform in [r_min, r_max] (paper 0.99)"}
    )
    r_max: float = field(default=0.999, metadata={"help": "upper end of the Λ init range (paper 0.999)"})
    fixed_a: float | None = field(
        default=None, metadata={"help": "fixed-interp: the constant a (default (r_min + r_max) / 2)"}
    )
    two_pass: bool = field(
        default=False,
        metadata={
            "help": "gradient through the hidden mix: a second loss forward fed h recomputed from the first (the reference has none)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of problems, LoRA and gate init, and sampling"})
    save_every: int = field(default=10, metadata={"help": "steps between checkpoints"})
    max_minutes: float | None = field(
        default=None, metadata={"help": "stop (resumably) after this many minutes"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.out:
            raise ValueError("--out is required: the run directory (rerun the same command to resume)")
        positive = {
            "steps": self.steps,
            "prompts_per_step": self.prompts_per_step,
            "micro_batch": self.micro_batch,
            "save_every": self.save_every,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        if self.group_size < 2:
            raise ValueError(
                f"--group-size must be >= 2 (advantages are relative within a group), got {self.group_size}"
            )
        if self.temperature <= 0:
            raise ValueError(
                f"--temperature must be > 0 (HRPO samples, and h is built from softmax(z/τ)), got {self.temperature}"
            )
        if self.top_k < 0 or self.test_problems < 0 or self.eval_every < 0 or self.eval_problems < 0:
            raise ValueError("--top-k, --test-problems, --eval-every and --eval-problems must be >= 0")
        if not 0 < self.r_min <= self.r_max < 1:
            raise ValueError(f"need 0 < --r-min <= --r-max < 1, got {self.r_min} and {self.r_max}")
        if self.fixed_a is not None and not 0 < self.fixed_a <= 1:
            raise ValueError(f"--fixed-a must be in (0, 1], got {self.fixed_a}")
        if self.two_pass and self.mode == "grpo":
            raise ValueError(
                "--two-pass differentiates through the hidden mix, which --mode grpo does not have"
            )
        for name in ("lr", "lr_gates", "lr_lambda"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        if self.beta < 0 or self.weight_decay < 0 or self.grad_clip < 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError(
                "--beta, --weight-decay and --grad-clip must be >= 0 and --warmup-ratio in [0, 1)"
            )
        if not self.delimiter:
            raise ValueError("--delimiter must be non-empty")
        if self.bench == "arith" and (not self.ops or any(not 1 <= k <= 8 for k in self.ops)):
            raise ValueError(f"--ops must list operation counts in 1..8, got {list(self.ops)}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()

    @property
    def hybrid(self) -> bool:
        return self.mode != "grpo"


#: fields that may change when a run resumes (everything else defines the run)
RESUMABLE = frozenset({"out", "threads", "progress", "max_minutes", "save_every", "eval_every",
                       "test_problems", "request_timeout", "max_retries", "micro_batch"})  # fmt: skip
