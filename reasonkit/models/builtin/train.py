"""``reasonkit train-lm``: train the built-in GatedLM on a mixture of every arith block task.

    reasonkit train-lm --out runs/lm                       # the shipped recipe (GPU: minutes)
    reasonkit train-lm --out runs/lm                       # rerun: continues from the checkpoint
    reasonkit train-lm --out runs/tiny --hidden-size 64 --num-layers 2 --layer-types gla attn \\
        --steps 200 --batch-size 32 --device cpu           # a smoke run
    python -m reasonkit.models.builtin.train --help        # the same, without the CLI entry

The loss is next-token cross-entropy on target tokens only, averaged over the step's target tokens.
AdamW, linear warm-up then cosine decay to ``min_lr_ratio · lr``; on CUDA float32 with TF32 matmuls
(``--bf16`` for autocast). The run directory holds ``checkpoint.pt``, ``metrics.jsonl`` (training
and validation records), ``loss.png`` and ``accuracy.png``, ``summary.json`` and the loadable model
in ``model/``. Batches come from :mod:`reasonkit.models.builtin.data` (pair ``i`` depends only on
(split, seed, i), so resuming regenerates exactly the unseen pairs).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reasonkit.config import config_to_dict, parse_config
from reasonkit.models.builtin.checkpoint import (
    CHECKPOINT,
    build_model,
    check_resumable,
    count_parameters,
    export_model,
    load_checkpoint,
    run_identity,
    save_checkpoint,
)
from reasonkit.models.builtin.config import TrainLMConfig
from reasonkit.models.builtin.data import IGNORE, MicroBatch, load_extra, step_loader, validation_set
from reasonkit.models.threads import set_threads
from reasonkit.rundir import JsonlAppender, atomic_write_json, claim, read_jsonl


def learning_rate(cfg: TrainLMConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from ``lr`` to ``min_lr_ratio · lr`` at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainLMConfig) -> torch.optim.AdamW:
    # decay matrices (and the tied embedding); never norms' gains or biases
    decay = [p for p in model.parameters() if p.dim() >= 2]
    keep = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto"
        )
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def micro_loss(
    model: Any, batch: MicroBatch, device: torch.device, autocast: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed target cross-entropy, per-row correct-token count, per-row target count) of one micro-batch."""
    ids = batch.input_ids.to(device, non_blocking=True)
    labels = batch.labels.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids, use_cache=False).logits  # (b, T, V); no cache in validation either
    logits, targets = logits[:, :-1].float(), labels[:, 1:]  # position t predicts token t + 1
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    mask = targets != IGNORE
    correct = ((logits.argmax(-1) == targets) & mask).sum(1)  # (b,)
    return loss, correct, mask.sum(1)


@torch.no_grad()
def validate(
    model: Any, batches: Sequence[MicroBatch], device: torch.device, autocast: bool
) -> dict[str, Any]:
    """Loss, token accuracy and exact match (every target token right under teacher forcing), per task too."""
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    exact: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for batch in batches:
        loss, right, count = micro_loss(model, batch, device, autocast)
        loss_sum, tokens, correct = (
            loss_sum + float(loss),
            tokens + int(count.sum()),
            correct + int(right.sum()),
        )
        for task, ok in zip(batch.tasks, (right == count).tolist()):
            exact[task][0] += int(ok)
            exact[task][1] += 1
    model.train()
    rows = sum(n for _, n in exact.values())
    return {
        "val_loss": loss_sum / max(1, tokens),
        "val_token_acc": correct / max(1, tokens),
        "val_exact": sum(k for k, _ in exact.values()) / max(1, rows),
        "val_exact_by_task": {t: round(k / n, 4) for t, (k, n) in sorted(exact.items())},
    }


def init_from_export(model: Any, directory: Path, cfg: TrainLMConfig | None) -> tuple[int, int]:
    """Load an exported model's weights into ``model``; returns (step, pairs seen) from its reasonkit.json.
    With ``cfg`` the export must have been trained the same way (``--init-from`` resumes its schedule);
    without, only the architecture must match (``--finetune-from`` starts a new one)."""
    card_path = directory / "reasonkit.json"
    if not card_path.is_file():
        raise ValueError(
            f"no reasonkit.json in {directory}; pass a directory written by train-lm "
            "(OUT/model, --export DIR or reasonkit/models/zoo/builtin)"
        )
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if cfg is not None:
        check_resumable(card.get("train_config") or {}, cfg, card_path)
    from transformers import AutoModelForCausalLM

    from reasonkit.progress import quiet_transformers_bars

    with quiet_transformers_bars():  # its "Loading weights" bar would land in the training log
        source = AutoModelForCausalLM.from_pretrained(str(directory))
    model.load_state_dict(source.state_dict())
    return int(card.get("step", 0)), int(card.get("pairs_seen", 0))


def write_plots(out: Path) -> None:
    """loss.png and accuracy.png from metrics.jsonl (skipped, with a note, where matplotlib is missing)."""
    import importlib.util

    from reasonkit.plots import line_plot

    if importlib.util.find_spec("matplotlib") is None:  # e.g. a bare GPU image: metrics.jsonl has it all
        return
    records = read_jsonl(out / "metrics.jsonl", tolerate_torn_tail=True)
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    if not train:
        return
    loss = {"train": ([r["step"] for r in train], [r["loss"] for r in train])}
    acc = {"train token acc": ([r["step"] for r in train], [r["token_acc"] for r in train])}
    if val:
        loss["validation"] = ([r["step"] for r in val], [r["val_loss"] for r in val])
        acc["val token acc"] = ([r["step"] for r in val], [r["val_token_acc"] for r in val])
        acc["val exact match"] = ([r["step"] for r in val], [r["val_exact"] for r in val])
    line_plot(
        out / "loss.png", loss, title="train-lm: target cross-entropy", xlabel="step", ylabel="nats/token"
    )
    line_plot(
        out / "accuracy.png", acc, title="train-lm: accuracy", xlabel="step", ylabel="fraction", ylim=(0, 1)
    )


class Trainer:
    """One run: model, optimizer, run directory; :meth:`run` trains until ``steps`` or the time limit."""

    def __init__(self, cfg: TrainLMConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out).expanduser()
        # the validation set is tokenized here before the DataLoader forks its workers
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.device = resolve_device(cfg.device)
        self.autocast = self.device.type == "cuda" and cfg.bf16
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # float32 training at TF32 matmul speed
            torch.backends.cudnn.allow_tf32 = True
        self.model = build_model(cfg)
        if self.device.type == "cuda":
            self.model.config.gla_kernel = "chunk"  # chunkwise GLA at every length while training on GPU
            for layer in self.model.model.layers:
                if layer.layer_type == "gla":
                    layer.mixer.kernel_mode = "chunk"
        self.model.to(self.device).train()
        # the shared policy: 1 thread for a small CPU model unless --threads says otherwise. Measured
        # on 2 cores (BENCHMARKS.md, "CPU threads"): 2 threads train 1.8x faster when the cores are
        # idle and 1.8x slower when they are busy; a long run should not depend on the neighbours.
        self.threads = set_threads(cfg.threads, self.model)
        self.optimizer = make_optimizer(self.model, cfg)
        self.step, self.pairs, self.elapsed_before = 0, 0, 0.0
        self.rewarm_start: int | None = None  # set when starting from exported weights (fresh optimizer)
        path = self.out / CHECKPOINT
        if path.exists():
            payload = load_checkpoint(path)
            check_resumable(payload["config"], cfg, path)
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.step, self.pairs = int(payload["step"]), int(payload.get("pairs", 0))
            self.elapsed_before = float(payload.get("elapsed", 0.0))
            self.rewarm_start = payload.get("rewarm_start")
        elif cfg.init_from:
            self.step, self.pairs = init_from_export(self.model, Path(cfg.init_from).expanduser(), cfg)
            self.rewarm_start = self.step
        elif cfg.finetune_from:
            init_from_export(self.model, Path(cfg.finetune_from).expanduser(), None)  # a new schedule: step 0
        self.extra = (load_extra(cfg.extra_data), cfg.extra_share) if cfg.extra_data else None
        self.forward = torch.compile(self.model, dynamic=True) if cfg.compile else self.model

    def lr_at(self, step: int) -> float:
        """The schedule's rate, ramped up again over ``warmup_steps`` after ``--init-from`` (Adam's
        moments start from zero there, and a full-size first update would jolt every weight)."""
        rate = learning_rate(self.cfg, step)
        if self.rewarm_start is not None and self.cfg.warmup_steps > 0:
            rate *= min(1.0, (step - self.rewarm_start + 1) / self.cfg.warmup_steps)
        return rate

    # ---- persistence -------------------------------------------------------------------------
    def card(self) -> dict[str, Any]:
        return {
            "trained_by": "reasonkit train-lm",
            "step": self.step,
            "pairs_seen": self.pairs,
            "parameters": count_parameters(self.model),
            "train_config": {k: v for k, v in config_to_dict(self.cfg).items() if k not in ("out", "export")},
        }

    def save(self, elapsed: float) -> None:
        state = {
            "step": self.step,
            "pairs": self.pairs,
            "elapsed": elapsed,
            "rewarm_start": self.rewarm_start,
        }
        save_checkpoint(self.out / CHECKPOINT, self.model, self.optimizer, self.cfg, state)
        export_model(self.model, self.out / "model", self.card())
        write_plots(self.out)

    # ---- training ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / "config.json", config_to_dict(cfg))
        workers = max(1, (os.cpu_count() or 2) - 1) if cfg.workers < 0 else cfg.workers
        end = cfg.steps if cfg.stop_at is None else min(cfg.steps, cfg.stop_at)
        start, started = self.step, time.perf_counter()
        status = "finished" if self.step >= cfg.steps else "stopped"
        if self.step < end:
            val = validation_set(cfg.seed, cfg.val_pairs, cfg.max_tokens, cfg.pack)
            status = self._loop(val, workers, end, started)
        elapsed = self.elapsed_before + time.perf_counter() - started
        if self.step > start or not (self.out / "model" / "config.json").is_file():
            self.save(elapsed)
        if cfg.export:
            export_model(self.model, cfg.export, self.card())
        summary = {
            "status": status,
            "step": self.step,
            "steps": cfg.steps,
            "pairs_seen": self.pairs,
            "elapsed_seconds": round(elapsed, 1),
            "parameters": count_parameters(self.model),
            "model_dir": str(self.out / "model"),
            "export": cfg.export,
        }
        atomic_write_json(self.out / "summary.json", summary)
        return summary

    def _loop(self, val: list[MicroBatch], workers: int, end: int, started: float) -> str:
        """Train steps ``self.step .. end-1``; returns "finished", "stopped" (--stop-at) or "time_limit"."""
        from reasonkit.progress import progress_bar

        cfg = self.cfg
        loader = step_loader(
            cfg.seed,
            self.step,
            end,
            cfg.batch_size,
            cfg.max_tokens,
            cfg.bucket_ratio,
            workers,
            pin_memory=self.device.type == "cuda",
            extra=self.extra,
            pack=cfg.pack,
        )
        # Warnings and log records (DataLoader workers, torch) print above the bar, not inside it.
        bar = progress_bar(
            total=cfg.steps, initial=self.step, enabled=cfg.progress, desc="train-lm", unit="step"
        )
        window: dict[str, Any] = defaultdict(float)
        window_start = time.perf_counter()
        try:
            with JsonlAppender(self.out / "metrics.jsonl") as metrics:
                for batch in loader:
                    if batch.step != self.step:  # ordered by construction; never train out of order
                        raise RuntimeError(
                            f"data stream out of order: step {batch.step}, expected {self.step}"
                        )
                    self._train_step(batch, window)
                    bar.update(1)
                    last = self.step == end
                    if self.step % cfg.log_every == 0 or last:
                        record = self._record(window, time.perf_counter() - window_start, started)
                        metrics.write(record)
                        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['token_acc']:.3f}")
                        if not cfg.progress:  # logs of background and remote runs still show progress
                            print(_log_line(record, cfg.steps), flush=True)
                        window, window_start = defaultdict(float), time.perf_counter()
                    if val and (self.step % cfg.val_every == 0 or last):
                        metrics.write(
                            {"step": self.step, **validate(self.forward, val, self.device, self.autocast)}
                        )
                    elapsed = time.perf_counter() - started
                    if cfg.max_minutes is not None and elapsed >= 60 * cfg.max_minutes and not last:
                        bar.write(
                            f"train-lm: --max-minutes {cfg.max_minutes} reached at step {self.step}; "
                            "saving (rerun the same command to continue)"
                        )
                        return "time_limit"
                    if self.step % cfg.save_every == 0 and not last:
                        self.save(self.elapsed_before + elapsed)
        except KeyboardInterrupt:
            self.save(self.elapsed_before + time.perf_counter() - started)  # keep what was trained
            raise
        finally:
            bar.close()
        return "finished" if self.step >= cfg.steps else "stopped"

    def _train_step(self, batch: Any, window: dict[str, Any]) -> None:
        """One optimizer step; running sums stay on the device (no GPU sync until the next log)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        denominator = max(1, batch.target_tokens)
        for micro in batch.micro:
            loss, correct, _ = micro_loss(self.forward, micro, self.device, self.autocast)
            (loss / denominator).backward()
            window["loss_sum"] = window["loss_sum"] + loss.detach()
            window["correct"] = window["correct"] + correct.sum()
        window["targets"] += batch.target_tokens
        window["tokens"] += batch.tokens
        window["pairs"] += self.cfg.batch_size
        if self.cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            window["grad_norm"] = window["grad_norm"] + norm
        window["steps"] += 1
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.pairs += self.cfg.batch_size

    def _record(self, window: dict[str, Any], seconds: float, started: float) -> dict[str, Any]:
        return {
            "step": self.step,
            "loss": float(window["loss_sum"]) / max(1.0, window["targets"]),
            "token_acc": float(window["correct"]) / max(1.0, window["targets"]),
            "lr": self.lr_at(self.step - 1),
            "grad_norm": float(window["grad_norm"]) / max(1.0, window["steps"]),
            "pairs_per_s": window["pairs"] / max(1e-9, seconds),
            "tokens_per_s": window["tokens"] / max(1e-9, seconds),
            "pairs_seen": self.pairs,
            "elapsed": round(self.elapsed_before + time.perf_counter() - started, 1),
        }


def _log_line(record: dict[str, Any], steps: int) -> str:
    return (
        f"step {record['step']}/{steps} loss {record['loss']:.4f} token_acc {record['token_acc']:.4f} "
        f"lr {record['lr']:.2e} {record['pairs_per_s']:.0f} pairs/s {record['elapsed']:.0f} s"
    )


def train_lm(cfg: TrainLMConfig) -> dict[str, Any]:
    """Train (or continue) the run ``cfg.out``; returns the summary written to ``OUT/summary.json``."""
    with claim(Path(cfg.out).expanduser(), run_identity(cfg), what="train-lm run"):
        return Trainer(cfg).run()


def train_lm_command(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``reasonkit train-lm``: parse flags (or ``--config x.yaml``), train, print the summary."""
    cfg = parse_config(TrainLMConfig, argv, prog="reasonkit train-lm")
    summary = train_lm(cfg)
    print(
        f"train-lm: {summary['status']} at step {summary['step']}/{summary['steps']} "
        f"({summary['pairs_seen']} pairs, {summary['elapsed_seconds']} s); model in {summary['model_dir']}"
        + (f" and {summary['export']}" if summary["export"] else "")
    )
    return 0


if __name__ == "__main__":
    from reasonkit.models.builtin.entry import run_main

    raise SystemExit(run_main(train_lm_command))
