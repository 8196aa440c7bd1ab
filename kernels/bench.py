"""Kernel benchmarks: time implementations side by side, print a table, append it to BENCHMARKS.md.

    python -m reasonkit.kernels.bench                     # every case for the default device
    python -m reasonkit.kernels.bench --device cuda --only gla --no-write
    python -m reasonkit.kernels.bench --quick --threads 1 --note "shared machine"

Each op folder provides ``bench_cases(device[, quick])`` returning :class:`BenchCase` objects: one
workload (group, name, sizes) with several zero-argument callables (the variants) and the variant
the others are compared with. For each case the runner warms every variant up, then times them in
interleaved rounds (so drift in machine load hits all variants alike) and reports the median; on
CUDA every call is bracketed by ``torch.cuda.synchronize`` so the time is the kernels', not the
launch's. Results are appended (never rewritten) to ``BENCHMARKS.md`` at the repository root with the
date, hardware, library versions and the command line.

Importing this module is cheap (no torch): op folders import :class:`BenchCase` from it lazily.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Op packages asked for cases, in order; a package that fails to import is reported and skipped.
CASE_SOURCES = ("reasonkit.kernels.gla", "reasonkit.kernels.gated_attention", "reasonkit.kernels.rnn")
BENCHMARKS_FILE = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = """# Benchmarks

Appended by `python -m reasonkit.kernels.bench` (kernels/bench.py); each block is one run with its
date, hardware and versions. Times are medians of interleaved repeats after warm-up; "× base" is the
variant's time divided by the baseline's (below 1 is faster), "speed-up" its inverse.
"""


@dataclass
class BenchCase:
    """One workload timed under several implementations.

    ``variants`` maps a display name to a zero-argument callable that runs the workload once
    (inputs are built beforehand, so only the op is timed); ``baseline`` names the variant the
    others are compared with. ``note`` is printed under the table (e.g. why a variant is absent).
    """

    group: str
    name: str
    sizes: str
    variants: dict[str, Callable[[], object]]
    baseline: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.baseline not in self.variants:
            raise ValueError(
                f"BenchCase {self.group}/{self.name}: baseline {self.baseline!r} is not one of the "
                f"variants {sorted(self.variants)}"
            )


@dataclass
class Timing:
    case: BenchCase
    variant: str
    median_s: float
    repeats: int
    error: str = ""


@dataclass
class RunSettings:
    device: str
    warmup: int = 1
    min_repeats: int = 3
    max_repeats: int = 20
    budget_s: float = 3.0  # per variant and case, after warm-up
    notes: list[str] = field(default_factory=list)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _time_once(fn: Callable[[], object], device: str) -> float:
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


def time_case(case: BenchCase, settings: RunSettings) -> list[Timing]:
    """Warm up every variant, then time them in interleaved rounds until the budget is spent."""
    samples: dict[str, list[float]] = {name: [] for name in case.variants}
    errors: dict[str, str] = {}
    for name, fn in case.variants.items():
        try:
            for _ in range(settings.warmup):
                samples[name].append(_time_once(fn, settings.device))
        except Exception as exc:  # a variant that cannot run is reported, not fatal to the table
            errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    live = [name for name in case.variants if name not in errors]
    timed: dict[str, list[float]] = {name: [] for name in live}

    def wants_more(name: str) -> bool:
        done = timed[name]
        if len(done) >= settings.max_repeats:
            return False
        if done and done[0] >= settings.budget_s:  # one run already spends the budget
            return False
        return len(done) < settings.min_repeats or sum(done) < settings.budget_s

    while active := [name for name in live if wants_more(name)]:
        for name in active:
            timed[name].append(_time_once(case.variants[name], settings.device))
    results = []
    for name in case.variants:
        if name in errors:
            results.append(Timing(case, name, float("nan"), 0, errors[name]))
        else:
            runs = timed[name]
            results.append(Timing(case, name, statistics.median(runs), len(runs)))
    return results


def collect_cases(device: str, quick: bool, only: str | None) -> tuple[list[BenchCase], list[str]]:
    """Cases from every op package (filtered by group name), and notes on packages that were skipped."""
    cases: list[BenchCase] = []
    notes: list[str] = []
    for module_name in CASE_SOURCES:
        try:
            provider = importlib.import_module(module_name).bench_cases
        except (ImportError, AttributeError) as exc:
            notes.append(f"{module_name}: no benchmark cases ({type(exc).__name__}: {exc})")
            continue
        kwargs: dict[str, Any] = {"quick": quick} if "quick" in inspect.signature(provider).parameters else {}
        cases.extend(provider(device, **kwargs))
    if only is not None:
        cases = [c for c in cases if c.group.lower().startswith(only.lower())]
    return cases, notes


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    import torch

    return f"{name}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads"


def versions() -> str:
    import torch

    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    try:
        import triton

        parts.append(f"triton {triton.__version__}")
    except ImportError:
        parts.append("triton absent")
    return ", ".join(parts)


def run_cases(
    cases: Sequence[BenchCase], settings: RunSettings, max_seconds: float | None = None
) -> tuple[list[Timing], list[str]]:
    """Time ``cases`` in order, printing each case's rows (stderr) as soon as it is measured.

    With ``max_seconds``, no case starts once that much time has passed (the first always runs):
    a run cut short by a time limit (first Triton compilations on a GPU take minutes) still has
    every finished row on screen, and the table says which cases were left out.
    """
    timings: list[Timing] = []
    notes: list[str] = []
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        if max_seconds is not None and i > 1 and time.perf_counter() - start > max_seconds:
            left = ", ".join(f"{c.group} {c.name} {c.sizes}" for c in cases[i - 1 :])
            notes.append(
                f"stopped after {i - 1} of {len(cases)} cases (time limit {max_seconds:.0f} s); not run: {left}"
            )
            break
        print(f"[{i}/{len(cases)}] {case.group} {case.name} {case.sizes}", file=sys.stderr, flush=True)
        measured = time_case(case, settings)
        timings.extend(measured)
        print("\n".join(format_table(measured)[2:]), file=sys.stderr, flush=True)
        if case.note:
            notes.append(f"{case.group} {case.name} {case.sizes}: {case.note}")
    return timings, notes


def format_table(timings: Sequence[Timing]) -> list[str]:
    """Markdown rows: group | case | sizes | variant | median ms | × base | speed-up | repeats."""
    rows = [
        "| group | case | sizes | variant | median ms | × base | speed-up | repeats |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    by_case: dict[int, list[Timing]] = {}
    for t in timings:
        by_case.setdefault(id(t.case), []).append(t)
    for group in by_case.values():
        case = group[0].case
        base = next(t for t in group if t.variant == case.baseline).median_s
        for t in group:
            if t.error:
                rows.append(
                    f"| {case.group} | {case.name} | {case.sizes} | {t.variant} | failed: {t.error} | | | 0 |"
                )
                continue
            ratio, speedup = t.median_s / base, base / t.median_s
            mark = " (base)" if t.variant == case.baseline else ""
            rows.append(
                f"| {case.group} | {case.name} | {case.sizes} | {t.variant}{mark} | {t.median_s * 1e3:.3f} "
                f"| {ratio:.3f} | {speedup:.2f}× | {t.repeats} |"
            )
    return rows


def append_results(path: Path, rows: list[str], device: str, command: str, notes: list[str]) -> None:
    """Append one dated block; write the header first when the file does not exist yet."""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    block = [
        f"## {stamp} — {device}",
        "",
        f"- hardware: {hardware(device)}",
        f"- versions: {versions()}",
        f"- command: `{command}`",
        *[f"- note: {n}" for n in notes],
        "",
        *rows,
        "",
    ]
    new_file = not path.exists()
    with path.open("a", encoding="utf-8") as fh:
        if new_file:
            fh.write(HEADER + "\n")
        fh.write("\n".join(block) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reasonkit.kernels.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer sizes and repeats (minutes on 2 CPU cores)"
    )
    parser.add_argument("--only", default=None, help="run only groups whose name starts with this (e.g. gla)")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table, do not append to BENCHMARKS.md"
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a note stored with the results (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=BENCHMARKS_FILE, help="file to append to")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new case after this many minutes; the table notes the cases left out",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 is steadier on a busy machine",
    )
    args = parser.parse_args(argv)

    import torch

    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device; use --device cpu")
    settings = RunSettings(device=device, budget_s=1.0 if args.quick else 3.0)
    cases, notes = collect_cases(device, args.quick, args.only)
    if not cases:
        parser.error(f"no benchmark cases for device={device} only={args.only!r}: {notes}")
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    timings, run_notes = run_cases(cases, settings, max_seconds)
    notes = list(dict.fromkeys([*args.note, *notes, *run_notes]))
    rows = format_table(timings)
    print("\n".join(rows))
    for n in notes:
        print(f"note: {n}")
    if not args.no_write:
        command = "python -m reasonkit.kernels.bench " + " ".join(argv if argv is not None else sys.argv[1:])
        append_results(args.output, rows, device, command.strip(), notes)
        print(f"appended to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
