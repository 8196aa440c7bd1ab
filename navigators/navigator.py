"""A trained navigator: the dueling Q-network plus where it came from, in one small safetensors file.

The file holds the network's 2,566 weights and string metadata — ``format`` (``reasonkit-navigator``),
``version``, ``model``, ``task``, ``reward``, ``episodes``, ``date``, ``pack``, ``max_depth`` and the
training ``config`` as JSON — about 12 KB. safetensors, not a pickle: loading a navigator someone
shared runs no code. The navigator acts greedily: ``act(states)`` is argmax over its Q-values.

    >>> nav = Navigator.load("builtin-arith")          # a shipped preset, or a path  # doctest: +SKIP
    >>> nav.act(np.array([[3, 3, 3, 1, 2, 3, 3]]))                                     # doctest: +SKIP
    array([4])
    >>> nav.metadata["model"], nav.metadata["episodes"]                               # doctest: +SKIP
    ('builtin', '1500')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reasonkit.navigators.network import DuelingQNet
from reasonkit.rundir import atomic_write_bytes

FORMAT = "reasonkit-navigator"
VERSION = "1"
#: Metadata every navigator file carries (values are strings, as safetensors requires).
REQUIRED_METADATA = ("format", "version", "model", "task", "reward", "episodes", "date")


class NavigatorFileError(ValueError):
    """A navigator file is missing, unreadable or not a reasonkit navigator."""


#: (metadata key, default, largest accepted): checked before anything is built from them (a file
#: claiming ``hidden: 100000`` would otherwise allocate a 40 TB network)
_SIZES = (("obs_dim", 7, 64), ("n_actions", 5, 64), ("hidden", 32, 4096))


def _size(path: Path, meta: dict[str, str], name: str, default: int, limit: int) -> int:
    raw = meta.get(name, str(default))
    if not raw.isdecimal() or not 1 <= int(raw) <= limit:
        raise NavigatorFileError(
            f"{path}: metadata {name}={raw!r} is not a whole number from 1 to {limit}; the file was not "
            "written by `reasonkit train-navigator` or was edited: retrain or restore it"
        )
    return int(raw)


@dataclass
class Navigator:
    """A dueling Q-network over self-evaluation states, with its provenance."""

    net: DuelingQNet
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @property
    def max_depth(self) -> int | None:
        value = self.metadata.get("max_depth")
        return int(value) if value else None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the weights (names, shapes, float32 bytes): equal for equal policies."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.net.state_dict().items()):
            digest.update(f"{name}:{tuple(tensor.shape)};".encode())
            digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
        return digest.hexdigest()

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Q-values (B, 5) for states (B, 7) or (7,) of raw scores 0..3."""
        batch = np.asarray(states, dtype=np.float32).reshape(-1, self.net.obs_dim)
        with torch.no_grad():
            return self.net(torch.from_numpy(batch)).numpy()

    def act(self, states: np.ndarray) -> np.ndarray:
        """Greedy actions (B,) for states (B, 7) or (7,)."""
        return self.q_values(states).argmax(axis=1)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the navigator atomically to ``path`` (a .safetensors file)."""
        from safetensors.torch import save

        meta = {
            "format": FORMAT,
            "version": VERSION,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "obs_dim": str(self.net.obs_dim),
            "n_actions": str(self.net.n_actions),
            "hidden": str(self.net.hidden),
            **{k: str(v) for k, v in self.metadata.items()},
        }
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ValueError(f"a navigator file needs metadata {missing} (model, task, reward, episodes)")
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, save(tensors, metadata=meta))
        self.metadata = meta
        return target

    @classmethod
    def load(cls, path_or_preset: str | Path) -> Navigator:
        """Load a navigator file, or a preset shipped in ``reasonkit/navigators/presets`` by name."""
        from safetensors import safe_open

        from reasonkit.navigators.presets import PRESETS, preset_path

        path = Path(path_or_preset)
        if str(path_or_preset) in PRESETS:
            path = preset_path(str(path_or_preset))
        if not path.is_file():
            raise NavigatorFileError(
                f"no navigator file at {path}: train one with `reasonkit train-navigator` (it writes "
                f"OUT/navigator.safetensors) or name a shipped preset: {', '.join(PRESETS) or 'none'}"
            )
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = dict(handle.metadata() or {})
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (not a dict)
        except Exception as exc:  # safetensors raises its own error types for anything malformed
            raise NavigatorFileError(
                f"{path} is not a navigator file ({type(exc).__name__}: {exc}); expected the "
                ".safetensors file `reasonkit train-navigator` writes"
            ) from None
        if meta.get("format") != FORMAT:
            raise NavigatorFileError(
                f"{path} is a safetensors file but not a reasonkit navigator (metadata format="
                f"{meta.get('format')!r}, expected {FORMAT!r}); pass the navigator.safetensors of a training run"
            )
        if meta.get("version") != VERSION:
            raise NavigatorFileError(
                f"{path} is navigator format version {meta.get('version')!r}; this reasonkit reads version "
                f"{VERSION}: upgrade reasonkit or retrain the navigator"
            )
        sizes = {name: _size(path, meta, name, default, limit) for name, default, limit in _SIZES}
        bad = sorted(name for name, tensor in tensors.items() if not bool(torch.isfinite(tensor).all()))
        if bad:
            raise NavigatorFileError(
                f"{path}: weights {', '.join(bad)} hold NaN or infinite values (a diverged run?); use "
                "the run's navigator-best.safetensors or retrain"
            )
        net = DuelingQNet(sizes["obs_dim"], sizes["n_actions"], sizes["hidden"])
        try:
            net.load_state_dict(tensors)
        except RuntimeError as exc:
            raise NavigatorFileError(f"{path}: the weights do not fit the dueling network ({exc})") from None
        return cls(net.eval(), meta)

    def describe(self) -> dict[str, Any]:
        """The metadata as JSON-able data (``config`` decoded)."""
        out: dict[str, Any] = dict(self.metadata)
        if "config" in out:
            with contextlib.suppress(ValueError):  # an older file may hold plain text there
                out["config"] = json.loads(out["config"])
        out["parameters"] = self.n_parameters
        return out
