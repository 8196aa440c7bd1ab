"""Model construction, training checkpoints and the exported model directory of ``train-lm``.

* ``OUT/checkpoint.pt`` — weights, optimizer state, step and config; written to a temporary file
  and renamed, so a crash never leaves half a checkpoint.
* ``OUT/model/`` (and ``--export DIR``) — what ``load_backend`` and ``AutoModelForCausalLM`` load:
  ``config.json``, ``model.safetensors`` (float32), ``tokenizer.json``, ``tokenizer_config.json`` and
  ``reasonkit.json`` (``{"prompt_pack": "compact", "kinds": ["arith"], ...}`` plus how it was trained). The directory is
  built beside the target and swapped in, so a reader sees the old model or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from reasonkit.config import config_to_dict
from reasonkit.models.builtin.config import IDENTITY_FIELDS, TrainLMConfig
from reasonkit.models.builtin.tokenizer import save_tokenizer, vocabulary
from reasonkit.rundir import atomic_open, atomic_write_json, identity_clash, replace_directory

CHECKPOINT = "checkpoint.pt"
EXPORT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "reasonkit.json",
)


def model_config(cfg: TrainLMConfig) -> Any:
    from reasonkit.models import GatedLMConfig

    vocab = vocabulary()
    return GatedLMConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        mixer_types=list(cfg.layer_types),
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads,
        max_position_embeddings=512,  # the longest training sequence is ~380 tokens
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<bos>"],
        eos_token_id=vocab["<eos>"],
    )


def build_model(cfg: TrainLMConfig) -> Any:
    """A freshly initialised GatedLM for ``cfg``; the weights depend only on ``cfg.seed``."""
    from reasonkit.models import GatedLMForCausalLM

    torch.manual_seed(cfg.seed)
    return GatedLMForCausalLM(model_config(cfg))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainLMConfig, state: dict
) -> None:
    payload = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "config": config_to_dict(cfg),
        **state,
    }
    with atomic_open(path, "wb", encoding=None) as handle:
        torch.save(payload, handle)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``; a damaged file raises one error naming it and the fix."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        reason = (str(exc).splitlines() or [""])[0][:160]  # torch's unpickling messages run to pages
        raise ValueError(
            f"{path} is not a readable train-lm checkpoint ({type(exc).__name__}: {reason}); "
            "delete it to start the run over, or pass another --out"
        ) from exc
    if not isinstance(payload, dict) or not {"model", "optimizer", "config", "step"} <= set(payload):
        raise ValueError(f"{path} is not a train-lm checkpoint (missing keys); pass another --out")
    return payload


def run_identity(cfg: TrainLMConfig) -> dict[str, Any]:
    """The settings that define a train-lm run (a resumed run must match them)."""
    now = config_to_dict(cfg)
    identity = {k: now[k] for k in IDENTITY_FIELDS}
    if cfg.extra_data:  # the file's content, not only its name, defines the run
        import hashlib

        identity["extra_data_sha256"] = hashlib.sha256(
            Path(cfg.extra_data).expanduser().read_bytes()
        ).hexdigest()
    return identity


def check_resumable(stored: dict[str, Any], cfg: TrainLMConfig, path: Path) -> None:
    """A resumed run must train the same model the same way; anything else is a new run."""
    clash = identity_clash(stored, run_identity(cfg))
    if clash:
        raise ValueError(
            f"{path} was trained with different settings ({'; '.join(clash)}); rerun with the "
            "checkpoint's settings to resume, or pass a new --out to start another run"
        )


def _save_weights(model: Any, directory: Path) -> None:
    from reasonkit.progress import quiet_transformers_bars

    kernel = model.config.gla_kernel
    model.config.gla_kernel = "auto"  # training may force "chunk"; a loaded model picks per device
    try:
        with quiet_transformers_bars():  # its "Writing model shards" bar would break the training bar
            model.save_pretrained(str(directory))  # safetensors, the only format of transformers 5
    finally:
        model.config.gla_kernel = kernel


def export_model(model: Any, directory: str | Path, card: dict[str, Any]) -> Path:
    """Write the loadable model directory (see the module docstring); returns its path."""
    target = Path(directory).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _save_weights(model, tmp)
        # HFBackend passes its own GenerationConfig; one file less to ship
        with contextlib.suppress(FileNotFoundError):
            (tmp / "generation_config.json").unlink()
        save_tokenizer(tmp)
        pack = card.get("train_config", {}).get("pack", "compact")  # the pack the model was trained on
        atomic_write_json(tmp / "reasonkit.json", {"prompt_pack": pack, "kinds": ["arith"], **card})
        missing = [name for name in EXPORT_FILES if not (tmp / name).is_file()]
        if missing:
            raise RuntimeError(
                f"export to {target} is missing {missing}; transformers wrote {os.listdir(tmp)}"
            )
        for path in tmp.iterdir():  # mkdtemp and atomic writes make owner-only files; a model is for everyone
            path.chmod(0o644)
        tmp.chmod(0o755)
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
