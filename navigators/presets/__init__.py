"""Navigators shipped with reasonkit, loadable by name: ``Navigator.load("builtin-arith")``.

Each preset is a ``<name>.safetensors`` file in this folder; its metadata says how it was trained
(model, task, reward, episodes, the full config). docs/navigators.md gives the command that
reproduces each one.
"""

from __future__ import annotations

from pathlib import Path

PRESET_DIR = Path(__file__).resolve().parent
#: preset name -> file name, for the presets present in this installation.
PRESETS: dict[str, str] = {p.stem: p.name for p in sorted(PRESET_DIR.glob("*.safetensors"))}


def preset_path(name: str) -> Path:
    """The file of preset ``name``."""
    if name not in PRESETS:
        raise ValueError(f"unknown navigator preset {name!r}; presets: {', '.join(PRESETS) or 'none'}")
    return PRESET_DIR / PRESETS[name]
