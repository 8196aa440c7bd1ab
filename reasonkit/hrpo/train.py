"""``reasonkit train-hrpo``: train a model with HRPO (or its GRPO control) — one process or many.

    reasonkit train-hrpo --out runs/hrpo                    # built-in model, arith 6-8 operations
    reasonkit train-hrpo --out runs/grpo --mode grpo        # the control: the same trainer, plain inputs
    accelerate launch --num_processes 2 --cpu -m reasonkit train-hrpo --out runs/hrpo2   # same result
    reasonkit eval --bench arith --model hrpo:runs/hrpo     # the trained policy as a backend

Paper: "Hybrid Latent Reasoning via Reinforcement Learning" (arXiv 2505.18454). The run directory:

    OUT/run.json            the settings that define the run (a rerun must match them; claim())
    OUT/checkpoint/         policy (LoRA adapter, gates, hrpo.json) and trainer state (checkpoint.py)
    OUT/metrics.jsonl       one record per step (reward, accuracy, lengths, hidden share, KL, time
                            split) and one per evaluation
    OUT/test.jsonl          the final greedy test, one record per problem
    OUT/reward.png, hidden_share.png, length.png      the curves (curves.py)
    OUT/summary.json        the final figures

Under ``accelerate launch`` every process builds the same policy, takes ``prompts_per_step / N`` of
each step's prompts (whole groups), and distributed data parallel averages the gradients; process 0
alone writes the directory. A step's samples depend only on (seed, step, prompt, sample), so N
processes give the one-process result with the same global batch (tests/hrpo/test_accelerate.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reasonkit.config import config_to_dict, parse_config
from reasonkit.hrpo import checkpoint
from reasonkit.hrpo.build import build_policy, decode_hooks, load_policy_weights
from reasonkit.hrpo.config import RESUMABLE, HRPOConfig
from reasonkit.hrpo.curves import write_curves
from reasonkit.hrpo.evaluate import evaluate
from reasonkit.hrpo.problems import evaluation_problems, training_stream
from reasonkit.hrpo.step import StepInputs, StepSettings, train_step
from reasonkit.rundir import (
    JsonlAppender,
    RunDirError,
    atomic_write_json,
    atomic_write_text,
    claim,
    read_jsonl,
)

#: seconds between redraws of the curves at checkpoints (they are always drawn when a run ends)
PLOT_EVERY_S = 300.0


def lr_factor(step: int, steps: int, warmup_ratio: float) -> float:
    """Linear warm-up over ``warmup_ratio · steps``, then cosine to 0 (the reference's schedule)."""
    warmup = math.ceil(warmup_ratio * steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    def __init__(self, cfg: HRPOConfig, accelerator: Any) -> None:
        from reasonkit.backends import require_whitebox
        from reasonkit.backends.hf import HFBackend
        from reasonkit.kit.base import resolve_pack

        self.cfg, self.acc = cfg, accelerator
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        if cfg.prompts_per_step % self.world:
            raise ValueError(
                f"--prompts-per-step {cfg.prompts_per_step} does not split over {self.world} processes; "
                f"use a multiple of {self.world} (each process takes whole prompt groups)"
            )
        base = cfg.load(cfg.model, local={"device": str(accelerator.device), "dtype": "float32"})
        require_whitebox(base, "train-hrpo")
        self.pack = resolve_pack(None, base)
        self.base_spec = _portable_spec(cfg.model)
        self.base_digest = base.weights_digest  # which weights the LoRA is for (checked when loaded)
        self.policy = build_policy(
            base.model.float(),
            base.tokenizer,
            mode=cfg.mode,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            lora_rank=cfg.lora_rank,
            lora_alpha=cfg.lora_alpha,
            r_min=cfg.r_min,
            r_max=cfg.r_max,
            fixed_a=cfg.fixed_a,
            seed=cfg.seed,
        )
        card = self.card()
        self.hooks = decode_hooks(self.policy.mixer, base.tokenizer, card, record=True)
        eval_hooks = decode_hooks(self.policy.mixer, base.tokenizer, card) if cfg.hybrid else None
        self.backend = HFBackend(
            self.policy.lm.model, base.tokenizer, prompt_pack=base.prompt_pack, hooks=eval_hooks,
            threads=cfg.threads, name=f"hrpo:{cfg.out}", batch_size=64,
        )  # fmt: skip
        self.backend.kinds = base.kinds
        hint = self.pack.sampling("cot", "arith" if cfg.bench == "arith" else None)
        self.settings = StepSettings(
            group_size=cfg.group_size,
            max_new_tokens=cfg.max_new_tokens or hint.max_new_tokens,
            top_k=cfg.top_k,
            beta=cfg.beta,
            two_pass=cfg.two_pass,
            micro_batch=cfg.micro_batch,
            seed=cfg.seed,
            delimiter=cfg.delimiter,
            stop=tuple(hint.stop),
            eos_ids=tuple(sorted(base.eos_ids)),
            pad_id=base.pad_id,
        )
        groups = self.policy.parameter_groups(cfg.lr, cfg.lr_gates, cfg.lr_lambda, cfg.weight_decay)
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, cfg.adam_beta2), eps=1e-8)
        self.step, self.elapsed_before = 0, 0.0
        self.plotted = time.perf_counter()
        saved = checkpoint.load_training_state(cfg.out_dir)
        if saved is not None:
            folder, state = saved
            recorded = checkpoint.read_policy_card(folder / "policy").get("base_digest")
            if recorded and self.base_digest and recorded != self.base_digest:
                raise RunDirError(
                    f"{cfg.out_dir} was trained on {cfg.model!r} with weights {recorded}, which now has weights "
                    f"{self.base_digest}; resume it over the weights it was trained on, or use another --out"
                )
            load_policy_weights(self.policy, folder / "policy")
            checkpoint.load_optimizer(self.optimizer, folder / "trainer")
            self.step, self.elapsed_before = int(state["step"]), float(state.get("elapsed", 0.0))
        self.forward = accelerator.prepare(self.policy)  # distributed data parallel when N > 1
        self.stream = training_stream(cfg)

    def card(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "base_model": self.base_spec,
            "base_digest": self.base_digest,
            "mode": cfg.mode,
            "temperature": cfg.temperature,
            "top_k": cfg.top_k,
            "delimiter": cfg.delimiter,
            "fixed_a": cfg.fixed_a,
            "r_min": cfg.r_min,
            "r_max": cfg.r_max,
            "prompt_pack": self.backend.prompt_pack if hasattr(self, "backend") else None,
            "step": getattr(self, "step", 0),
            "trained_by": "reasonkit train-hrpo",
        }

    @property
    def main(self) -> bool:
        return bool(self.acc.is_main_process)

    def inputs(self, step: int) -> StepInputs:
        P = self.cfg.prompts_per_step
        share = P // self.world
        indices = list(range(step * P + self.rank * share, step * P + (self.rank + 1) * share))
        problems = [self.stream[i] for i in indices]
        prompts = [self.backend.encode(self.pack.cot(p)) for p in problems]
        return StepInputs(problems, indices, prompts)

    def clip(self) -> Any:
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.cfg.grad_clip > 0:
            return self.acc.clip_grad_norm_(params, self.cfg.grad_clip)
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))

    def run(self) -> dict[str, Any]:
        from reasonkit.progress import progress_bar

        cfg, out = self.cfg, self.cfg.out_dir
        if self.main:
            _truncate_metrics(out / "metrics.jsonl", self.step)  # records after the checkpoint are redone
        started = time.perf_counter()
        status = "finished"
        bar = progress_bar(total=cfg.steps, initial=self.step, enabled=cfg.progress and self.main,
                           desc=f"train-hrpo {cfg.mode}", unit="step")  # fmt: skip
        try:
            with JsonlAppender(out / "metrics.jsonl") if self.main else _NoRecords() as metrics:
                while self.step < cfg.steps:
                    for group in self.optimizer.param_groups:
                        group.setdefault("initial_lr", group["lr"])
                        group["lr"] = group["initial_lr"] * lr_factor(self.step, cfg.steps, cfg.warmup_ratio)
                    result = train_step(
                        self.step, self.inputs(self.step), self.policy, self.forward, self.hooks,
                        self.optimizer, self.clip, self.settings,
                    )  # fmt: skip
                    self.step += 1
                    record = self.record(result, started)
                    metrics.write(record)
                    bar.update(1)
                    bar.set_postfix(reward=f"{record['reward']:.3f}", share=f"{record['hidden_share']:.3f}")
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                        metrics.write(self.periodic_eval())
                    elapsed = time.perf_counter() - started
                    if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                        self.save(elapsed)
                    if (
                        cfg.max_minutes is not None
                        and elapsed >= 60 * cfg.max_minutes
                        and self.step < cfg.steps
                    ):
                        status = "time_limit"
                        self.save(elapsed)
                        break
        finally:
            bar.close()
        elapsed = self.elapsed_before + time.perf_counter() - started
        summary: dict[str, Any] = {"status": status, "step": self.step, "steps": cfg.steps, "mode": cfg.mode}
        if status == "finished":
            summary.update(self.final_test())
        summary["elapsed_seconds"] = round(elapsed, 1)
        if self.main:
            atomic_write_json(out / "summary.json", summary)
            write_curves(out)
        return summary

    def record(self, result: dict[str, Any], started: float) -> dict[str, Any]:
        device = self.acc.device  # NCCL gathers device tensors only; the step returns CPU ones
        rows = {name: self.acc.gather(value.to(device)).cpu() for name, value in result["rows"].items()}
        varied = self.acc.gather(result["groups_varied"].to(device)).cpu()
        # each process's loss is the mean over its equal share of the sequences: their mean is the global one
        loss = self.acc.gather(torch.tensor([result["loss"]], device=self.acc.device)).mean()
        seconds = result["seconds"]
        hybrid = self.cfg.hybrid
        return {
            "step": self.step,
            **{name: float(value.mean()) for name, value in rows.items() if hybrid or name != "hidden_share"},
            **({} if hybrid else {"hidden_share": 0.0}),
            "groups_with_signal": float(varied.mean()),
            "loss": float(loss),
            "grad_norm": result["grad_norm"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "rollout_s": round(seconds["rollout"], 3),
            "reference_s": round(seconds["reference"], 3),
            "update_s": round(seconds["update"], 3),
            "tokens_per_s": round(result["tokens"] / max(1e-9, seconds["rollout"]), 1),
            "elapsed": round(self.elapsed_before + time.perf_counter() - started, 1),
        }

    def save(self, elapsed: float) -> None:
        self.acc.wait_for_everyone()
        if self.main:
            card = {**self.card(), "step": self.step}
            state = {"step": self.step, "elapsed": round(self.elapsed_before + elapsed, 1)}
            checkpoint.save(
                self.cfg.out_dir, self.policy.model, self.policy.mixer, card, self.optimizer, state
            )
            if time.perf_counter() - self.plotted > PLOT_EVERY_S:  # a long run's curves, not every save
                write_curves(self.cfg.out_dir)
                self.plotted = time.perf_counter()
        self.acc.wait_for_everyone()

    def greedy(self, split: str, count: int) -> list[dict[str, Any]]:
        """Greedy CoT on ``count`` problems of ``split``, sharded over processes, gathered in order."""
        problems = evaluation_problems(self.cfg, split, count)
        mine = evaluate(self.backend, problems, self.settings.max_new_tokens, self.rank, self.world)
        if self.world > 1:
            from accelerate.utils import gather_object

            mine = gather_object(mine)
        return sorted(mine, key=lambda r: r["index"])

    def periodic_eval(self) -> dict[str, Any]:
        records = self.greedy("validation", self.cfg.eval_problems)
        return {
            "step": self.step,
            "eval_accuracy": _mean([r["correct"] for r in records]),
            "eval_n": len(records),
        }

    def final_test(self) -> dict[str, Any]:
        records = self.greedy("test", self.cfg.test_problems)
        if self.main and records:
            atomic_write_json(self.cfg.out_dir / "test.json", records)
        correct = sum(r["correct"] for r in records)
        by_ops: dict[str, list[int]] = {}
        for r in records:
            by_ops.setdefault(str(r["ops"]), []).append(int(r["correct"]))
        return {
            "test_accuracy": correct / len(records) if records else None,
            "test_correct": correct,
            "test_n": len(records),
            "test_by_ops": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_ops.items())},
            "test_mean_tokens": _mean([r["tokens"] for r in records]),
        }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class _NoRecords:
    """What processes other than the first write records to: nothing."""

    def __enter__(self) -> _NoRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, record: Any) -> None:
        return None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records of steps after the checkpoint (a run killed between saves redoes them)."""
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path, tolerate_torn_tail=True) if int(r.get("step", 0)) <= step]
    atomic_write_text(path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept))


def _portable_spec(spec: str) -> str:
    """The base model's spec as another directory can load it (a local path made absolute)."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if spec not in ("builtin",) and path.exists() else spec


def train_hrpo(cfg: HRPOConfig) -> dict[str, Any]:
    """Train (or resume) the run ``cfg.out``; returns the summary written to ``OUT/summary.json``."""
    from accelerate import Accelerator

    accelerator = Accelerator()
    identity = {k: v for k, v in config_to_dict(cfg).items() if k not in RESUMABLE}
    held, failure = None, None
    if accelerator.is_main_process:
        try:
            held = claim(cfg.out_dir, identity, what="train-hrpo run")
        except (ValueError, OSError) as exc:
            failure = exc
    # every process learns whether process 0 holds the directory (no process waits on a failed one)
    flags = accelerator.gather(torch.tensor([0.0 if failure else 1.0], device=accelerator.device))
    if failure is not None:
        raise failure
    if not bool(flags.min() > 0):
        raise RuntimeError(f"process 0 could not take the run directory {cfg.out}; see its error")
    try:
        return Trainer(cfg, accelerator).run()
    finally:
        if held is not None:
            held.release()


def train_hrpo_command(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``reasonkit train-hrpo``."""
    cfg = parse_config(HRPOConfig, argv, prog="reasonkit train-hrpo")
    summary = train_hrpo(cfg)
    accuracy = summary.get("test_accuracy")
    tail = f"; test accuracy {accuracy:.3f} on {summary['test_n']} problems" if accuracy is not None else ""
    print(
        f"train-hrpo {cfg.mode}: {summary['status']} at step {summary['step']}/{summary['steps']}{tail}; run in {cfg.out}"
    )
    return 0
