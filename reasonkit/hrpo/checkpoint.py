"""What ``train-hrpo`` keeps on disk: safetensors and JSON only (nothing is unpickled).

    OUT/checkpoint/policy/adapter_model.safetensors, adapter_config.json   the LoRA adapter (peft's format)
    OUT/checkpoint/policy/mixer.safetensors                                the gates r, i and Λ (HRPO modes)
    OUT/checkpoint/policy/hrpo.json       how to rebuild and decode it: base model spec, mode, τ, top-k,
                                          delimiter, h source, fixed a, step (``reasonkit.hrpo.backend``)
    OUT/checkpoint/trainer/optimizer.safetensors, optimizer.json           AdamW moments and param groups
    OUT/checkpoint/trainer/state.json     the step reached and the time spent

The whole ``checkpoint/`` folder is written beside itself and swapped in with two renames, so a
reader (a resuming run, ``hrpo:OUT`` as a backend) sees the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from reasonkit.rundir import atomic_write_json, read_json, replace_directory

CHECKPOINT = "checkpoint"
POLICY_FILE = "hrpo.json"
FORMAT = "reasonkit.hrpo/1"


def policy_dir(path: str | Path) -> Path:
    """The policy folder of a run directory (or the folder itself when it holds ``hrpo.json``);
    a clear error naming the fix when there is none."""
    base = Path(path).expanduser()
    for candidate in (base, base / CHECKPOINT / "policy"):
        if (candidate / POLICY_FILE).is_file():
            return candidate
    if not base.exists():
        raise FileNotFoundError(f"{base} does not exist; pass the --out directory of a train-hrpo run")
    raise FileNotFoundError(
        f"{base} holds no HRPO checkpoint (no {CHECKPOINT}/policy/{POLICY_FILE}); pass the --out directory of "
        "a train-hrpo run that saved at least once (it saves every --save-every steps)"
    )


def read_policy_card(directory: Path) -> dict[str, Any]:
    card = read_json(directory / POLICY_FILE)
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ValueError(
            f"{directory / POLICY_FILE} is not a {FORMAT} policy card; pass the --out directory of a train-hrpo run"
        )
    missing = [k for k in ("base_model", "mode", "temperature", "top_k", "delimiter") if k not in card]
    if missing:
        raise ValueError(f"{directory / POLICY_FILE} lacks {missing}; it was not written by train-hrpo")
    return card


def save(
    out: Path,
    model: Any,
    mixer: torch.nn.Module | None,
    card: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Write OUT/checkpoint (layout in the module docstring) and swap it in."""
    target = out / CHECKPOINT
    tmp = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT}.", dir=out))
    try:
        policy, trainer = tmp / "policy", tmp / "trainer"
        model.save_pretrained(str(policy))  # adapter_model.safetensors + adapter_config.json
        (policy / "README.md").unlink(missing_ok=True)  # peft's model-card stub
        if mixer is not None and any(True for _ in mixer.parameters()):
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in mixer.state_dict().items()},
                policy / "mixer.safetensors",
            )
        atomic_write_json(policy / POLICY_FILE, {"format": FORMAT, **card})
        trainer.mkdir()
        save_optimizer(optimizer, trainer)
        atomic_write_json(trainer / "state.json", state)
        for path in tmp.rglob(
            "*"
        ):  # mkdtemp and atomic writes make owner-only files; a model is for everyone
            path.chmod(0o755 if path.is_dir() else 0o644)
        tmp.chmod(0o755)
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """AdamW's per-parameter tensors as safetensors, its param groups (hyper-parameters) as JSON."""
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value.detach().cpu().contiguous()
        for index, slots in state["state"].items()
        for key, value in slots.items()
        if isinstance(value, torch.Tensor)
    }
    save_file(tensors, directory / "optimizer.safetensors")
    atomic_write_json(directory / "optimizer.json", {"param_groups": state["param_groups"]})


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    groups = read_json(directory / "optimizer.json")["param_groups"]
    tensors = load_file(directory / "optimizer.safetensors")
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise ValueError(
            f"{directory}: the saved optimizer has other parameter groups than this run builds; pass a new --out"
        )
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})


def load_training_state(out: Path) -> tuple[Path, dict[str, Any]] | None:
    """(checkpoint folder, trainer state) of a run that saved before, or None."""
    folder = out / CHECKPOINT
    path = folder / "trainer" / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc.msg}); delete {folder} to start the run over"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"{path} has no step; delete {folder} to start the run over")
    return folder, state
