"""Pickles that run code when loaded: planted in run directories to prove resuming never unpickles.

``payload(sentinel)`` is the bytes of a pickle whose loading creates the file ``sentinel`` (it calls
``open(sentinel, "w")``): if a resume ever unpickled it, the file would exist afterwards.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path


class _Trap:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.sentinel, "w"))


def payload(sentinel: Path) -> bytes:
    return pickle.dumps({"model": _Trap(sentinel), "format": _Trap(sentinel)})


def plant(path: Path, sentinel: Path) -> None:
    """Write a payload at ``path``: a bare pickle, or inside a zip for ``.zip`` files (SB3's format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("data.pkl", payload(sentinel))
            archive.writestr("policy.pth", payload(sentinel))
    else:
        path.write_bytes(payload(sentinel))
