"""Training one model on one seed of the addition study, resumable (arXiv 2503.01906).

A run checkpoints every ``eval_every`` steps to ``checkpoints/<model>-seed<seed>.pt`` (atomically:
model, optimiser, step, the data/Gumbel generator, elapsed seconds), so an interrupted run resumes
on the same stream of batches. Every evaluation appends one line to ``metrics.jsonl``; a finished
run writes ``runs/<model>-seed<seed>.json`` and is skipped when the study is run again.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from reasonkit.rundir import JsonlAppender, atomic_write_bytes, atomic_write_json, read_json
from reasonkit.workspaces.addition import SPLITS, AdditionTask
from reasonkit.workspaces.config import WorkspaceConfig
from reasonkit.workspaces.models import AdderModel, build_model, own_parameters
from reasonkit.workspaces.number_modules import DigitEncoder

CHECKPOINT_FORMAT = 1


def run_name(model: str, seed: int) -> str:
    return f"{model}-seed{seed}"


def evaluate(model: AdderModel, task: AdditionTask, batch_size: int = 1024) -> dict[str, float]:
    """Exact-match accuracy of hard predictions on every split.

    Interpolation is also split by whether the commuted pair (b, a) was trained
    (``interpolation_swap_in_train`` / ``interpolation_swap_unseen``): commutativity alone solves
    the first group, only addition itself solves the second.
    """
    model.eval()
    accuracy = {}
    for split in SPLITS:
        stimulus, target = task.eval_set(split)
        correct = torch.cat(
            [
                model.predict(stimulus[start : start + batch_size]) == target[start : start + batch_size]
                for start in range(0, len(target), batch_size)
            ]
        )  # (P,) bool
        accuracy[split] = correct.float().mean().item()
        if split == "interpolation":
            swapped = task.swap_in_train(split)
            for key, group in (("swap_in_train", swapped), ("swap_unseen", ~swapped)):
                if bool(group.any()):
                    accuracy[f"interpolation_{key}"] = correct[group].float().mean().item()
    model.train()
    return accuracy


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data, no code
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        reason = (str(exc).splitlines() or [""])[0][:160]  # torch's unpickler messages run to pages
        raise RuntimeError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {reason}); it is not a checkpoint this "
            "study wrote: delete it to restart that run"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} is not a reasonkit workspace checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def train_run(
    model_name: str,
    seed: int,
    config: WorkspaceConfig,
    task: AdditionTask,
    out: Path,
    *,
    encoder: DigitEncoder | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or just load) one run; returns its summary (params, accuracies, seconds)."""
    name = run_name(model_name, seed)
    summary_path = out / "runs" / f"{name}.json"
    if summary_path.exists():
        return read_json(summary_path)
    assert config.steps is not None
    torch.manual_seed(seed)
    model = build_model(model_name, config, encoder)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    step, elapsed = 0, 0.0
    checkpoint_path = out / "checkpoints" / f"{name}.pt"
    if checkpoint_path.exists():
        payload = load_checkpoint(checkpoint_path)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        step, elapsed = int(payload["step"]), float(payload["elapsed"])
        if on_step is not None:
            on_step(step, float("nan"))
    model.train()
    with JsonlAppender(out / "metrics.jsonl") as metrics:
        started = time.perf_counter() - elapsed
        while step < config.steps:
            stimulus, target = task.batch(config.batch_size, generator)
            loss = model.loss(stimulus, target, step, generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            if on_step is not None:
                on_step(1, loss_value)
            if step % config.eval_every == 0 or step == config.steps:
                record = {"model": model_name, "seed": seed, "step": step, "loss": round(loss_value, 5)}
                record.update({f"acc_{k}": v for k, v in evaluate(model, task).items()})
                record["seconds"] = round(time.perf_counter() - started, 2)
                metrics.write(record)
                save_checkpoint(
                    checkpoint_path,
                    {
                        "format": CHECKPOINT_FORMAT,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "step": step,
                        "elapsed": record["seconds"],
                    },
                )
    summary = {
        "model": model_name,
        "seed": seed,
        "params": own_parameters(model),
        "accuracy": evaluate(model, task),
        "learned": model.describe(),
        "train_seconds": round(time.perf_counter() - started, 2),
        "steps": config.steps,
    }
    atomic_write_json(summary_path, summary)
    return summary


def load_encoder(path: Path, code_size: int) -> tuple[DigitEncoder, float]:
    """A pretrained digit encoder saved by the study (frozen) and its held-out accuracy."""
    payload = load_checkpoint(path)
    encoder = DigitEncoder(code_size)
    encoder.load_state_dict(payload["model"])
    encoder.requires_grad_(False)
    return encoder.eval(), float(payload["test_accuracy"])


def load_trained(out: Path, model_name: str, seed: int, config: WorkspaceConfig) -> AdderModel:
    """A trained model rebuilt from run directory ``out`` (with its seed's digit encoder for images)."""
    encoder = None
    if config.variant == "images":
        assert config.code_size is not None
        encoder, _ = load_encoder(out / "checkpoints" / f"encoder-seed{seed}.pt", config.code_size)
    model = build_model(model_name, config, encoder)
    model.load_state_dict(load_checkpoint(out / "checkpoints" / f"{run_name(model_name, seed)}.pt")["model"])
    model.eval()
    return model
