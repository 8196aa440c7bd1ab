"""Run directories: atomic writes, append-only JSONL records and strict JSONL reading.

Every runner and trainer in reasonkit writes into a run directory that can be interrupted and
resumed. The rules that make that safe live here:

- whole files (summaries, checkpoints, plots) are written to a temporary file in the same folder and
  renamed over the target, so a reader never sees half a file;
- records are appended one JSON line at a time and flushed, and a torn last line (a crash in the
  middle of a write) is dropped on resume instead of poisoning the run;
- reading a JSONL file that a user gave fails with the file, the line number and what is wrong;
- a run directory belongs to one run: :func:`claim` records what the run is (``run.json``), refuses
  a run with other settings, and locks the directory against a second process writing into it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


class RecordError(ValueError):
    """A JSONL file has a malformed line; the message names the file and the line."""


class RunDirError(ValueError):
    """A run directory holds another run, is in use by another process, or does not match its records."""


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


# ---------------------------------------------------------------------------------------- claims

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


def identity_clash(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The fields both mappings hold with different values, as "field: stored X vs now Y" (fields a
    newer version added to an identity are not a clash with an older record that lacks them)."""
    return [
        f"{k}: stored {stored[k]!r} vs now {v!r}" for k, v in now.items() if k in stored and stored[k] != v
    ]


class Claim:
    """A run directory held by this process (see :func:`claim`); release it with :meth:`release` or
    by leaving its ``with`` block. The operating system releases the lock if the process dies."""

    def __init__(self, run_dir: Path, record: dict[str, Any], key: str) -> None:
        self.run_dir, self.record, self._key = run_dir, record, key
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        lock, count = _HELD[self._key]
        if count > 1:
            _HELD[self._key] = (lock, count - 1)
            return
        del _HELD[self._key]
        if lock is not None:
            lock.close()  # closing the file drops the flock

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def replace_directory(tmp: Path, target: Path) -> None:
    """Replace directory ``target`` by the finished directory ``tmp`` (two renames; the old copy is
    removed afterwards), so a reader sees the old or the new directory, never a half-written one."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def claim(run_dir: str | Path, identity: Mapping[str, Any], *, what: str = "run") -> Claim:
    """Take ``run_dir`` for the run that ``identity`` (JSON-able fields) describes.

    The directory is created if needed and locked for this process: a second process claiming it
    fails at once with a :class:`RunDirError` naming the holder (pid, command, since when); claims
    nest within one process (an eval's claim around its controller's). Then the identity is compared
    with the one stored in ``run.json``: a field with another value is refused, naming the fields and
    the fix; fields the record lacks are added to it. Every runner and trainer takes its run
    directory this way, so a resumed run is always the same run.
    """
    directory = Path(run_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"{directory} exists and is not a directory; pass another --out") from None
    key = str(directory.resolve())
    if key in _HELD:
        lock, count = _HELD[key]
        _HELD[key] = (lock, count + 1)
    else:
        _HELD[key] = (_lock(directory), 1)
    held = Claim(directory, {}, key)
    try:
        path = directory / RUN_FILE
        stored = read_json(path) if path.exists() else {"created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if not isinstance(stored, dict):
            raise RunDirError(f"{path} is not a run record (a JSON object); pass another --out")
        clash = identity_clash(stored, identity)
        if clash:
            raise RunDirError(
                f"{directory} already holds a different {what} ({'; '.join(clash)}); pass a new --out "
                "directory, or delete this one to start over"
            )
        missing = {k: v for k, v in identity.items() if k not in stored}
        held.record = {**stored, **missing}
        if missing or not path.exists():
            atomic_write_json(path, held.record)
    except BaseException:
        held.release()
        raise
    return held


#: run directories this process holds: resolved path -> (lock file, nesting count)
_HELD: dict[str, tuple[IO[str] | None, int]] = {}


def _lock(directory: Path) -> IO[str] | None:
    """An exclusive, non-blocking flock on ``directory/.lock`` holding who took it (None without fcntl)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; runs are still checked by identity
        return None
    handle = (directory / LOCK_FILE).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(
            f"{directory} is in use by {holder}; wait for that run to finish (or stop it), then rerun to "
            "resume, or pass another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    command = " ".join(sys.argv)[:200]
    handle.write(f"pid {os.getpid()} ({command}) since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle
