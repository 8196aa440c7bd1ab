"""``tah:DIR``: a trained Think-at-Hard directory as a backend that every command runs unchanged.

    reasonkit solve "48-7*(3+2)" --model tah:runs/tah/tah
    reasonkit eval --bench arith --model tah:runs/tah/tah --out runs/eval-tah
    reasonkit serve --model "tah:runs/tah/tah#threshold=0.95"

``DIR`` is what ``reasonkit train-tah`` exports. After ``#``, comma-separated ``field=value`` pairs
override its ``tah.json`` for this run: ``threshold=0.95``, ``route=never`` (the first pass alone),
``route=always``, ``top_k=10``. The backend is an :class:`~reasonkit.backends.hf.HFBackend` over
``DIR/model`` whose decode loop runs :class:`~reasonkit.tah.hooks.TaHHooks`; its name carries the
spec, so run directories and caches never mix it with the plain model or another setting.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reasonkit.backends.base import LanguageModel
from reasonkit.backends.loading import SpecError

_OVERRIDABLE = {"threshold": float, "route": str, "top_k": int, "max_depth": int}


def parse_arguments(arguments: str) -> tuple[Path, dict[str, Any]]:
    """``DIR#field=value,...`` -> (directory, overrides)."""
    path_text, _, rest = arguments.partition("#")
    if not path_text.strip():
        raise SpecError("'tah:' needs the directory reasonkit train-tah exported, e.g. 'tah:runs/tah/tah'")
    overrides: dict[str, Any] = {}
    for part in (p.strip() for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        kind = _OVERRIDABLE.get(key.strip())
        if not eq or kind is None:
            raise SpecError(
                f"'tah:{arguments}': {part!r} is not an override; after '#' give field=value pairs from "
                f"{sorted(_OVERRIDABLE)}, e.g. 'tah:DIR#threshold=0.95'"
            )
        try:
            overrides[key.strip()] = kind(value.strip())
        except ValueError:
            raise SpecError(
                f"'tah:{arguments}': {key.strip()} takes a {kind.__name__}, got {value!r}"
            ) from None
    return Path(path_text.strip()).expanduser(), overrides


def load(arguments: str, **kwargs: Any) -> LanguageModel:
    """The backend for ``tah:DIR[#overrides]`` (keyword arguments go to HFBackend)."""
    from reasonkit.backends.hf import HFBackend
    from reasonkit.tah.hooks import TaHHooks
    from reasonkit.tah.model import TaHModel, read_config

    directory, overrides = parse_arguments(arguments)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"'tah:{arguments}': {directory} is not a directory; pass the directory reasonkit train-tah "
            "exported (OUT/tah)"
        )
    read_config(directory, overrides)  # a clear error before the model loads
    if not (directory / "model" / "config.json").is_file():
        raise FileNotFoundError(f"{directory}/model/config.json is missing: the directory holds no backbone")
    name = kwargs.pop("name", None) or f"tah:{arguments}"
    backend = HFBackend(str(directory / "model"), name=name, **kwargs)
    model = TaHModel.from_directory(backend.whitebox, directory, overrides)
    backend.hooks = TaHHooks(model)
    backend.fingerprint = f"{name}@{_digest(directory)}"
    return backend


def _digest(directory: Path) -> str:
    """Size and head of every file under ``directory``: adapters or a decider retrained in place change it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory)}:{path.stat().st_size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 16))
    return digest.hexdigest()[:16]
