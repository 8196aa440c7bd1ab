"""GPQA (Rein et al. 2023, arXiv 2311.12022) read straight from the official encrypted zip, in memory.

The authors ask that GPQA examples never appear in plain text online, so nothing here writes a row,
a question or an option anywhere: the zip is decrypted member by member into memory (Python's
``zipfile`` handles its ZipCrypto password), and every error names only the file, the record
number, the line, the field and the ``Record ID``.

The four options are shuffled per question with a seeded RNG keyed by ``(seed, Record ID)``, so a
question gets the same order whichever subset (main / diamond / extended) it is read from, the same
seed always gives the same order, and a different seed a different one (lighteval's unseeded
``random.randint`` is a known flaw of its GPQA task). The permutation is kept in
``Problem.meta["trace_meta"]`` and so lands in every trace.

    >>> problems = load_gpqa("shared/data/gpqa/dataset.zip", subset="diamond", seed=0)  # doctest: +SKIP
    >>> len(problems), problems[0].kind, problems[0].meta["trace_meta"]["permutation"]  # doctest: +SKIP
    (198, 'choice', [2, 0, 3, 1])
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

from reasonkit.types import Problem

#: Published in the official idavidrein/gpqa README next to the archive.
PASSWORD = b"deserted-untie-orchid"
SUBSETS: tuple[str, ...] = ("main", "diamond", "extended")
OPTION_FIELDS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
REQUIRED_FIELDS = ("Question", *OPTION_FIELDS, "Record ID")
LETTERS = "ABCD"


class GPQAError(ValueError):
    """The GPQA file is missing, unreadable or malformed; the message names where (never the text)."""


def shuffle_options(record_id: str, seed: int) -> list[int]:
    """The option order for one question: ``perm[j]`` is the original option shown as letter ``j``
    (original option 0 is the correct answer). Deterministic in ``(seed, record_id)``."""
    order = list(range(len(OPTION_FIELDS)))
    random.Random(f"reasonkit.gpqa:{seed}:{record_id}").shuffle(order)
    return order


def _find_source(path: Path) -> Path:
    if path.is_dir():
        for candidate in (path / "dataset.zip", path / "gpqa" / "dataset.zip"):
            if candidate.is_file():
                return candidate
        raise GPQAError(
            f"{path} holds no GPQA dataset.zip (looked for dataset.zip and gpqa/dataset.zip); pass --data "
            "pointing at the official zip, its folder, or a gpqa_<subset>.csv"
        )
    if not path.is_file():
        raise GPQAError(f"{path} does not exist; pass --data pointing at the official GPQA dataset.zip")
    return path


def _csv_rows(path: Path, subset: str) -> tuple[str, Iterator[tuple[int, int, dict[str, str]]]]:
    """``(where, rows)``: a label for errors and ``(record_number, line, row)`` for each CSV record."""
    if path.suffix.lower() == ".csv":
        handle: io.TextIOBase = path.open("r", encoding="utf-8", newline="")
        where = str(path)
    else:
        member = f"dataset/gpqa_{subset}.csv"
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if member not in names:
                    csvs = sorted(n for n in names if n.endswith(".csv"))
                    raise GPQAError(f"{path} has no member {member}; its CSV members are {csvs}")
                data = archive.read(member, pwd=PASSWORD)  # decrypted into memory only
        except zipfile.BadZipFile as exc:
            raise GPQAError(
                f"{path} is not a readable zip archive ({exc}); pass the official dataset.zip"
            ) from exc
        except RuntimeError as exc:  # zipfile reports a wrong password as RuntimeError
            raise GPQAError(
                f"{path}: cannot decrypt {member} ({exc}); is this the official archive?"
            ) from exc
        where = f"{path}:{member}"
        try:
            handle = io.StringIO(data.decode("utf-8"), newline="")
        except UnicodeDecodeError as exc:
            raise GPQAError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    return where, _records(handle, where)


def _records(handle: io.TextIOBase, where: str) -> Iterator[tuple[int, int, dict[str, str]]]:
    with handle:
        reader = csv.DictReader(handle)
        missing = [f for f in REQUIRED_FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise GPQAError(f"{where}, line 1: the header lacks column(s) {missing}; is this a GPQA CSV?")
        try:
            for number, row in enumerate(reader, start=1):
                yield number, reader.line_num, row
        except (csv.Error, UnicodeDecodeError) as exc:
            raise GPQAError(
                f"{where}, line {reader.line_num}: unreadable CSV ({type(exc).__name__})"
            ) from None


def load_gpqa(path: str | Path, subset: str = "diamond", seed: int = 0) -> list[Problem]:
    """GPQA ``subset`` ("main" 448, "diamond" 198, "extended" 546) as choice problems.

    ``path`` is the official ``dataset.zip`` (read in memory with its published password), a folder
    holding it, or one ``gpqa_<subset>.csv``. Problem ids are ``gpqa-<subset>-<Record ID>``; the gold
    answer is the letter the correct option got after the seeded shuffle.
    """
    if subset not in SUBSETS:
        raise GPQAError(f"unknown GPQA subset {subset!r}; choose one of {SUBSETS}")
    if not isinstance(seed, int):
        raise GPQAError(f"the GPQA shuffle seed must be an integer, got {seed!r}")
    where, rows = _csv_rows(_find_source(Path(path)), subset)
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, line, row in rows:
        for field in REQUIRED_FIELDS:
            if not (row.get(field) or "").strip():
                raise GPQAError(
                    f"{where}, record {number} (ending at line {line}): field {field!r} is empty or missing"
                )
        record_id = row["Record ID"].strip()
        if record_id in seen:
            raise GPQAError(f"{where}, record {number} (line {line}): Record ID {record_id} appears twice")
        seen.add(record_id)
        order = shuffle_options(record_id, seed)
        domain = (row.get("High-level domain") or "").strip() or "unknown"
        recorded = {"record_id": record_id, "permutation": order, "shuffle_seed": seed, "domain": domain}
        problems.append(
            Problem(
                id=f"gpqa-{subset}-{record_id}",
                question=row["Question"].strip(),
                answer=LETTERS[order.index(0)],
                kind="choice",
                choices=tuple(row[OPTION_FIELDS[k]].strip() for k in order),
                meta={
                    "benchmark": f"gpqa_{subset}",
                    "redact": True,  # the authors ask that the questions stay off the web: no text in files
                    "domain": domain,
                    "subdomain": (row.get("Subdomain") or "").strip(),
                    "trace_meta": recorded,
                },
            )
        )
    return problems
