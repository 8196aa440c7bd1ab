"""Find and load a causal LM and its tokenizer, offline first, with one clear error when it is missing.

Resolution order for ``spec``:
  1. an existing directory -> loaded from there;
  2. something that can only be a path (starts with ``/``, ``.``, ``~``, or has more than one ``/``)
     but does not exist -> error;
  3. an HF id (``org/name``) -> the local HF cache (``local_files_only=True``), then a download
     unless downloads are off (``download=False``, ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``).

``import reasonkit.models`` runs first (guarded) so that reasonkit's own GatedLM checkpoints resolve
through the transformers Auto classes. A model directory may hold ``reasonkit.json`` (for example
``{"prompt_pack": "compact"}``); :func:`read_model_card` returns it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reasonkit.backends.base import BackendError
from reasonkit.backends.loading import HF_ID, looks_like_path

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_models_import_error: str | None = None


def register_reasonkit_models() -> None:
    """Import ``reasonkit.models`` so GatedLM registers with the Auto classes; warn (once) if it cannot."""
    global _models_import_error
    try:
        importlib.import_module("reasonkit.models")
    except Exception as exc:  # a broken optional family must not stop Llama/Qwen checkpoints from loading
        if _models_import_error is None:
            _models_import_error = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"reasonkit.models failed to import ({_models_import_error}); reasonkit's own GatedLM "
                "checkpoints will not load, other transformers models are unaffected",
                RuntimeWarning,
                stacklevel=3,
            )


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    directory: Path | None  # where the files were found (a local dir or the HF cache snapshot)


def downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return offline.strip().lower() not in {"1", "true", "yes", "on"}


def resolve_dtype(dtype: str | torch.dtype, on_cpu: bool) -> torch.dtype | str:
    """``"auto"`` is the checkpoint's dtype on an accelerator and float32 on the CPU (bf16 matmuls are slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float32 if on_cpu else "auto"
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be 'auto', one of {sorted(_DTYPES)} or a torch.dtype, got {dtype!r}")


def placement(device: str | None) -> tuple[dict[str, Any], bool]:
    """from_pretrained kwargs that place the model, and whether it ends up on the CPU.

    No device: every visible GPU through accelerate (``device_map="auto"``), else the CPU.
    """
    if device is None:
        if torch.cuda.is_available():
            return {"device_map": "auto"}, False
        return {}, True
    if str(device) == "cpu":
        return {}, True
    return {"device_map": str(device)}, False


def missing_model_message(spec: str, reason: str) -> str:
    return (
        f"could not load model {spec!r}: {reason}. Fix: pass an existing local model directory, or fetch "
        'the model into the HF cache on a machine with network access (`python -c "from huggingface_hub '
        f"import snapshot_download; snapshot_download('{spec}')\"`) and point HF_HOME at that cache"
    )


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # invalid ids raise inside huggingface_hub; treat as "not cached"
        return None
    return Path(found).parent if isinstance(found, str) else None


def locate(spec: str, download: bool | None) -> tuple[str, Path | None]:
    """Where to load ``spec`` from: (a local directory, that directory) or (the HF id, None) to download."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackendError(missing_model_message(str(spec), "the model name is empty"))
    expanded = Path(spec).expanduser()
    if expanded.is_dir():
        if not (expanded / "config.json").is_file():
            raise BackendError(
                f"could not load model {spec!r}: the directory has no config.json, so it is not a saved "
                "transformers model. Fix: point at the folder written by model.save_pretrained(...)"
            )
        return str(expanded), expanded
    if looks_like_path(spec):
        raise BackendError(
            f"could not load model {spec!r}: no such directory ({expanded.resolve()}). Fix: pass the path of "
            "an existing model directory (one written by save_pretrained), or an HF id such as org/name"
        )
    if not HF_ID.match(spec):
        raise BackendError(
            missing_model_message(spec, "it is neither an existing directory nor an HF id (org/name)")
        )
    snapshot = _cached_snapshot(spec)
    if snapshot is not None:
        return str(snapshot), snapshot
    if not downloads_allowed(download):
        raise BackendError(
            missing_model_message(spec, "it is not in the local HF cache and downloads are off")
        )
    return spec, None


_FINGERPRINT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "reasonkit.json",
)
_EDGE = (
    2**20
)  # bytes read from each end of a weight file: retraining changes them, hashing 15 GB would not do


def fingerprint(directory: Path) -> str:
    """A short digest of what decides a model's outputs: config, tokenizer files, weight files' size and edges.

    Caches key on it, so retraining a checkpoint in place (same path) does not serve stale completions.
    """
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    for path in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin")):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_EDGE))
            handle.seek(max(0, size - _EDGE))
            digest.update(handle.read(_EDGE))
    return digest.hexdigest()[:16]


def read_model_card(directory: Path | None) -> dict[str, Any]:
    """The ``reasonkit.json`` of a model directory ({} when absent), or a clear error when malformed."""
    if directory is None:
        return {}
    path = directory / "reasonkit.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise BackendError(f'{path} must hold a JSON object such as {{"prompt_pack": "compact"}}')
    return data


def _quiet_local_load(local: bool) -> contextlib.AbstractContextManager[None]:
    """Hide transformers' per-tensor "Loading weights" bar for local checkpoints (it is noise in every
    CLI run); downloads keep their progress bars."""
    from reasonkit.progress import quiet_transformers_bars

    return quiet_transformers_bars(enabled=local)


def _check_weights(model: Any, info: dict[str, Any], spec: str) -> None:
    """Refuse a reasonkit-format checkpoint whose weights do not cover its config exactly: transformers
    would initialise the missing ones at random and ignore the extra ones, silently."""
    if getattr(getattr(model, "config", None), "model_type", None) != "reasonkit_gated_lm":
        return  # other models: transformers' own rules (and warnings) for their formats
    problems = {
        name: sorted(map(str, info.get(name) or ()))
        for name in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        listed = "; ".join(
            f"{k.replace('_', ' ')}: {', '.join(v[:6])}{' …' if len(v) > 6 else ''}"
            for k, v in problems.items()
        )
        raise BackendError(
            f"could not load model {spec!r}: its weights do not match its config.json ({listed}). Fix: the "
            "config and model.safetensors come from different exports; restore both from one"
        )


def load(
    spec: str,
    *,
    device: str | None,
    dtype: str | torch.dtype,
    trust_remote_code: bool,
    download: bool | None,
) -> Loaded:
    """Load ``spec`` (see the module docstring) as an AutoModelForCausalLM plus its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    register_reasonkit_models()
    source, directory = locate(spec, download)
    place, on_cpu = placement(device)
    local_only = directory is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only
        )
        with _quiet_local_load(local_only):
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                source,
                dtype=resolve_dtype(dtype, on_cpu),
                trust_remote_code=trust_remote_code,
                local_files_only=local_only,
                output_loading_info=True,
                **place,
            )
            model, info = loaded
    except Exception as exc:  # transformers, safetensors and the configs raise many types for one cause
        hint = ""
        if "trust_remote_code" in str(exc):
            hint = " (the checkpoint ships custom code: pass trust_remote_code=True if you trust it)"
        elif _models_import_error is not None:
            hint = f" (reasonkit.models failed to import: {_models_import_error})"
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}{hint}"
        if directory is not None:  # the files are here and wrong: no download will fix them
            raise BackendError(
                f"could not load model {spec!r}: {reason}. Fix: the directory {directory} does not hold a loadable "
                "model (a damaged or hand-edited file?): export or copy it again, or point at another model"
            ) from exc
        raise BackendError(missing_model_message(spec, reason)) from exc
    _check_weights(model, info, spec)
    if directory is None:  # downloaded just now: the snapshot holds reasonkit.json when the repo has one
        directory = _cached_snapshot(spec)
    return Loaded(model=model, tokenizer=tokenizer, directory=directory)
