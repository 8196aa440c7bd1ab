"""Run directories: atomic writes, append-only JSONL records and strict JSONL reading.

Every runner and trainer in reasonkit writes into a run directory that can be interrupted and
resumed. The rules that make that safe live here:

- whole files (summaries, checkpoints, plots) are written to a temporary file in the same folder and
  renamed over the target, so a reader never sees half a file;
- records are appended one JSON line at a time and flushed, and a torn last line (a crash in the
  middle of a write) is dropped on resume instead of poisoning the run;
- reading a JSONL file that a user gave fails with the file, the line number and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


class RecordError(ValueError):
    """A JSONL file has a malformed line; the message names the file and the line."""


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask).
    os.fchmod(fd, 0o666 & ~_current_umask())
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _current_umask() -> int:
    # os.umask can only be read by setting it; a lock keeps threads from seeing the brief 0.
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb", encoding=None) as handle:
        handle.write(data)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def iter_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    A malformed line raises :class:`RecordError` naming the file and line. With
    ``tolerate_torn_tail`` a malformed *last* line that lacks its newline (a write cut short by a
    crash) is skipped instead: that is how resumable runs read their own records.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist; check the path")
    with p.open("r", encoding="utf-8") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            torn = number == len(lines) and not line.endswith("\n")
            if tolerate_torn_tail and torn:
                return
            raise RecordError(f"{p}, line {number}: not valid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(obj, dict):
            raise RecordError(f"{p}, line {number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path, tolerate_torn_tail=tolerate_torn_tail)]


class JsonlAppender:
    """Append JSON objects as lines, flushing each; repairs a torn last line before appending.

    Use as a context manager. Each ``write`` is one complete line followed by ``flush`` and ``fsync``
    so a crash loses at most the record being written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._handle: IO[str] | None = self.path.open("a", encoding="utf-8")

    def _repair_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1  # drop the torn last line (0 when it is the only line)
        with self.path.open("r+b") as handle:
            handle.truncate(cut)

    def write(self, obj: Any) -> None:
        if self._handle is None:
            raise RuntimeError(f"{self.path} is closed")
        line = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        if "\n" in line:
            raise ValueError("a JSONL record must not contain a newline")
        self._handle.write(line + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def write_all(self, objs: Iterable[Any]) -> None:
        for obj in objs:
            self.write(obj)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
