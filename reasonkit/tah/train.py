"""``reasonkit train-tah``: train Think-at-Hard in two stages, under accelerate.

    reasonkit train-tah --out runs/tah                          # TaH on the built-in model (CPU, minutes)
    reasonkit train-tah --out runs/std --route never --max-depth 1 --decider-steps 0   # Standard
    reasonkit train-tah --out runs/always --route always --decider-steps 0             # Always-2
    accelerate launch -m reasonkit.tah.train --out runs/tah     # the same on several GPUs

Stage 1 trains the backbone and its LoRA adapters on arith chains of thought, routing tokens by the
oracle labels (hard = a fixed reference model's greedy mistake), with cross-entropy on each token's
final accumulated logits. Stage 2 freezes them and trains the decider with weighted BCE. The run
directory holds ``checkpoint.pt`` (weights, optimizer, RNG, stage and step; loaded with
``weights_only=True``), ``metrics.jsonl``, ``loss.png``, ``decider.png``, ``summary.json`` and the
trained model in ``tah/`` (``--model tah:OUT/tah`` everywhere). Rerunning the same command resumes.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reasonkit.config import config_to_dict, parse_config
from reasonkit.rundir import JsonlAppender, atomic_open, atomic_write_json, claim, read_jsonl
from reasonkit.tah.data import TextBatch, cot_pairs, encode_pairs, oracle_depths
from reasonkit.tah.evaluation import summarize, teacher_forced
from reasonkit.tah.model import TaHModel
from reasonkit.tah.train_config import IDENTITY_FIELDS, TrainTaHConfig
from reasonkit.tah.train_plots import write_plots

CHECKPOINT = "checkpoint.pt"
STAGES = ("backbone", "decider")


def schedule(step: int, steps: int, peak: float, warmup_ratio: float, floor: float) -> float:
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine down to ``floor · peak``."""
    warmup = max(1, round(warmup_ratio * steps)) if warmup_ratio > 0 else 0
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def micro_batches(backend: Any, pairs: Sequence[tuple[str, str]], max_tokens: int) -> list[TextBatch]:
    """Pairs sorted by length and cut into right-padded batches of at most ``max_tokens`` padded tokens."""
    lengths = [len(backend.encode(p)) + len(t) for p, t in pairs]  # characters bound the builtin's tokens
    order = sorted(range(len(pairs)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [encode_pairs(backend, [pairs[i] for i in g]) for g in groups]


class TaHTrainer:
    """One run: backbone, reference, :class:`TaHModel`, optimizer, run directory."""

    def __init__(self, cfg: TrainTaHConfig) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        from reasonkit.backends.loading import load_backend
        from reasonkit.models.threads import set_threads

        self.cfg, self.out = cfg, Path(cfg.out).expanduser()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.accelerator = Accelerator(
            cpu=cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        device = str(self.accelerator.device)
        self.backend = cfg.load(cfg.model, local={"device": device, "dtype": "float32"})
        reference: Any = load_backend(cfg.reference or cfg.model, device=device, dtype="float32")
        self.reference = reference.model.eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.threads = set_threads(cfg.threads, self.backend.model)
        torch.manual_seed(cfg.seed)
        self.model = TaHModel(self.backend.whitebox, cfg.tah_config())
        if cfg.trains_decider:
            self.model.decider = self.model.new_decider()
        self.stage, self.step, self.elapsed_before = "backbone", 0, 0.0
        self.val = micro_batches(
            self.backend, cot_pairs(cfg.problems, "validation", cfg.seed, 0, cfg.val_pairs), cfg.max_tokens
        )
        self.pos_weight = cfg.pos_weight or self._balanced_weight()
        self.optimizer = self._optimizer()
        path = self.out / CHECKPOINT
        if path.exists():
            self._resume(path)
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)

    # ---- setup ----------------------------------------------------------------------------------
    def _balanced_weight(self) -> float:
        """N_easy / N_hard of the validation labels (1.0 when no token is hard)."""
        hard = easy = 0
        for batch in self.val:
            depths = oracle_depths(self.reference, batch.to(self.accelerator.device), 2)
            scored = batch.targets.to(depths.device) != -100
            hard += int((depths[scored] > 1).sum())
            easy += int((depths[scored] == 1).sum())
        return easy / hard if hard else 1.0

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.stage == "decider":
            for p in self.model.parameters():
                p.requires_grad_(False)
            assert self.model.decider is not None
            params = list(self.model.decider.parameters())
            for p in params:
                p.requires_grad_(True)
            return torch.optim.AdamW(params, lr=self.cfg.decider_lr, weight_decay=self.cfg.weight_decay)
        # the decider's weights keep requires_grad (unused until stage 2) so that a DDP wrapper made now
        # all-reduces their gradients then; stage 1's optimizer leaves them out
        trainable = [p for n, p in self.model.named_parameters() if not n.startswith("decider.")]
        decay = [p for p in trainable if p.dim() >= 2]
        keep = [p for p in trainable if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": keep, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=(0.9, 0.95))

    def _resume(self, path: Path) -> None:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(payload["model"])
        self.stage, self.step = str(payload["stage"]), int(payload["step"])
        self.elapsed_before = float(payload.get("elapsed", 0.0))
        self.optimizer = self._optimizer()
        self.optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["rng"])
        _trim_metrics(self.out / "metrics.jsonl", self.stage, self.step)

    def _save(self, elapsed: float) -> None:
        if not self.accelerator.is_main_process:
            return
        payload = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "stage": self.stage,
            "step": self.step,
            "elapsed": elapsed,
            "rng": torch.get_rng_state(),
        }
        with atomic_open(self.out / CHECKPOINT, "wb", encoding=None) as handle:
            torch.save(payload, handle)
        write_plots(self.out)

    # ---- training -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.perf_counter()
        atomic_write_json(self.out / "config.json", config_to_dict(cfg))
        status = "finished"
        with JsonlAppender(self.out / "metrics.jsonl") as metrics:
            for stage, steps in (
                ("backbone", cfg.steps),
                ("decider", cfg.decider_steps if cfg.trains_decider else 0),
            ):
                if STAGES.index(stage) < STAGES.index(self.stage) or steps == 0:
                    continue
                if stage != self.stage:  # stage 1 is done: freeze it, train the decider from step 0
                    self.stage, self.step = stage, 0
                    self.optimizer = self.accelerator.prepare(self._optimizer())
                status = self._loop(stage, steps, metrics, started)
                if status != "finished":
                    break
        elapsed = self.elapsed_before + time.perf_counter() - started
        self._save(elapsed)
        summary = {
            "status": status,
            "stage": self.stage,
            "step": self.step,
            "elapsed_seconds": round(elapsed, 1),
        }
        if status == "finished" and self.accelerator.is_main_process:
            final = summarize(teacher_forced(self.model, self.val, self.reference))
            self.model.save(
                self.out / "tah",
                card=self._card(),
                extra={
                    "trained_by": "reasonkit train-tah",
                    "train_config": config_to_dict(cfg),
                    "pos_weight": self.pos_weight,
                    "validation": final,
                },
            )
            summary.update(validation=final, model_dir=str(self.out / "tah"), pos_weight=self.pos_weight)
        atomic_write_json(self.out / "summary.json", summary)
        return summary

    def _card(self) -> dict[str, Any]:
        card: dict[str, Any] = {"prompt_pack": self.backend.prompt_pack, "trained_by": "reasonkit train-tah"}
        if self.backend.kinds:
            card["kinds"] = list(self.backend.kinds)
        return card

    def _loop(self, stage: str, steps: int, metrics: JsonlAppender, started: float) -> str:
        from reasonkit.progress import progress_bar

        cfg = self.cfg
        window: defaultdict[str, float] = defaultdict(float)
        window_start = time.perf_counter()
        with progress_bar(
            total=steps, initial=self.step, enabled=cfg.progress, desc=f"train-tah {stage}", unit="step"
        ) as bar:
            while self.step < steps:
                for key, value in self._train_step(stage, steps).items():
                    window[key] += value
                bar.update(1)
                last = self.step == steps
                if self.step % cfg.log_every == 0 or last:
                    record = self._record(stage, window, time.perf_counter() - window_start, started)
                    metrics.write(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                    if not cfg.progress:
                        print(f"train-tah {stage} {self.step}/{steps} loss {record['loss']:.4f}", flush=True)
                    window, window_start = defaultdict(float), time.perf_counter()
                if self.step % cfg.val_every == 0 or last:
                    route = "oracle" if stage == "backbone" and cfg.trains_decider else None
                    val = summarize(teacher_forced(self.model, self.val, self.reference, route))
                    metrics.write(
                        {"stage": stage, "step": self.step, **{f"val_{k}": v for k, v in val.items()}}
                    )
                elapsed = time.perf_counter() - started
                if cfg.max_minutes is not None and elapsed >= 60 * cfg.max_minutes and not last:
                    bar.write(f"train-tah: --max-minutes reached at {stage} step {self.step}; saving")
                    return "time_limit"
                done = self.step + (cfg.steps if stage == "decider" else 0)
                more = not last or (stage == "backbone" and cfg.trains_decider)
                if cfg.stop_at is not None and done >= cfg.stop_at and more:
                    return "stopped"
                if self.step % cfg.save_every == 0 and not last:
                    self._save(self.elapsed_before + elapsed)
        return "finished"

    def _train_step(self, stage: str, steps: int) -> defaultdict[str, float]:
        cfg, acc = self.cfg, self.accelerator
        peak = cfg.lr if stage == "backbone" else cfg.decider_lr
        for group in self.optimizer.param_groups:
            group["lr"] = schedule(self.step, steps, peak, cfg.warmup_ratio, cfg.min_lr_ratio)
        seed = cfg.seed if stage == "backbone" else cfg.seed + 1  # the decider reads fresh pairs
        pairs = cot_pairs(cfg.problems, "train", seed, self.step * cfg.batch_size, cfg.batch_size)
        pairs = pairs[acc.process_index :: acc.num_processes]
        batches = micro_batches(self.backend, pairs, cfg.max_tokens)
        self.wrapped.train()
        sums: defaultdict[str, float] = defaultdict(float)
        counted = []
        for batch in batches:
            batch = batch.to(acc.device)
            counted.append(int((batch.targets != -100).sum()))
        total = max(1, sum(counted))
        for batch in batches:
            batch = batch.to(acc.device)
            inputs: dict[str, Any] = {"input_ids": batch.input_ids, "targets": batch.targets}
            if batch.attention_mask is not None:
                inputs["attention_mask"] = batch.attention_mask
            if cfg.route == "oracle":  # the other routes never read labels
                inputs["oracle"] = oracle_depths(self.reference, batch, cfg.max_depth)
            inputs["pos_weight"] = torch.tensor(self.pos_weight, device=acc.device)
            out = self.wrapped(inputs, stage=stage)
            acc.backward(out["loss_sum"] / total)
            for key, value in out.items():
                if key != "loss":
                    sums[key] += float(value.detach())
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.grad_clip > 0 and stage == "backbone":
            sums["grad_norm"] += float(acc.clip_grad_norm_(params, cfg.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        sums["steps"] += 1
        return sums

    def _record(
        self, stage: str, w: defaultdict[str, float], seconds: float, started: float
    ) -> dict[str, Any]:
        tokens = max(1.0, w["tokens"])
        record: dict[str, Any] = {"stage": stage, "step": self.step, "loss": w["loss_sum"] / tokens}
        if stage == "backbone":
            record.update(
                token_acc=w["correct"] / tokens,
                iterated_share=w["iterated"] / tokens,
                grad_norm=w["grad_norm"] / max(1.0, w["steps"]),
            )
        else:
            record.update(
                hard_share=w["positives"] / tokens,
                fire_share=w["fires"] / tokens,
                agreement=w["agree"] / tokens,
                recall=w["true_positives"] / max(1.0, w["positives"]),
            )
        record.update(
            lr=self.optimizer.param_groups[0]["lr"],
            steps_per_s=w["steps"] / max(1e-9, seconds),
            elapsed=round(self.elapsed_before + time.perf_counter() - started, 1),
        )
        return record


def _trim_metrics(path: Path, stage: str, step: int) -> None:
    """Drop records past the checkpoint (a run that died after logging them redoes those steps)."""
    if not path.exists():
        return
    kept = [
        r
        for r in read_jsonl(path, tolerate_torn_tail=True)
        if STAGES.index(r.get("stage", "backbone")) < STAGES.index(stage)
        or (r.get("stage", "backbone") == stage and r.get("step", 0) <= step)
    ]
    with atomic_open(path, "w") as handle:
        handle.writelines(__import__("json").dumps(r) + "\n" for r in kept)


def train_tah(cfg: TrainTaHConfig) -> dict[str, Any]:
    """Train (or continue) the run ``cfg.out``; returns the summary written to ``OUT/summary.json``."""
    identity = {k: v for k, v in config_to_dict(cfg).items() if k in IDENTITY_FIELDS}
    with claim(Path(cfg.out).expanduser(), identity, what="train-tah run"):
        return TaHTrainer(cfg).run()


def train_tah_command(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``reasonkit train-tah``."""
    cfg = parse_config(TrainTaHConfig, argv, prog="reasonkit train-tah")
    summary = train_tah(cfg)
    where = (
        f"; model in {summary['model_dir']} (use --model tah:{summary['model_dir']})"
        if "model_dir" in summary
        else ""
    )
    print(
        f"train-tah: {summary['status']} at {summary['stage']} step {summary['step']} ({summary['elapsed_seconds']} s){where}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(train_tah_command())
