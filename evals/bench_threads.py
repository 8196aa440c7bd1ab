"""How torch's CPU thread count changes the built-in model's commands, idle and under load.

    python -m reasonkit.evals.bench_threads                  # the table in BENCHMARKS.md, "CPU threads"
    python -m reasonkit.evals.bench_threads --repeats 1 --limit 10

Runs ``reasonkit eval --bench arith --limit N`` and ``reasonkit solve`` on the built-in model as real
subprocesses with ``--threads 1``, ``--threads K`` (K = the CPU count: torch's own default) and no
flag (reasonkit's default), alternating them so that drift hits every setting alike; then the same
next to a competing load (one busy-looping process per CPU). Times are what the command itself
reports: the eval's generation wall time (``summary.json``) and the solve's model time (its trace's
cost), so interpreter start-up and imports are left out. ``train`` times one optimizer step of the
built-in architecture (train-lm's default shape) on a batch of 256 sequences of 96 tokens, in this
process. Prints a markdown table of medians and ratios to one thread.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reasonkit.config import parse_config


@dataclass
class BenchThreadsConfig:
    """Time the built-in model's eval and solve with 1 thread, torch's default and reasonkit's default."""

    limit: int = field(default=40, metadata={"help": "arith problems for the eval command"})
    repeats: int = field(default=3, metadata={"help": "runs of each setting (the median is reported)"})
    question: str = field(default="48-7*(3+2)", metadata={"help": "the question for the solve command"})
    commands: tuple[str, ...] = field(
        default=("eval", "solve", "train"),
        metadata={
            "help": "what to time: eval, solve (subprocesses), train (one train-lm step in this process)"
        },
    )

    def __post_init__(self) -> None:
        self.commands = tuple(self.commands)
        unknown = sorted(set(self.commands) - {"eval", "solve", "train"})
        if unknown or not self.commands:
            raise ValueError(f"--commands takes eval, solve, train; got {list(self.commands)}")


def _reasonkit(*args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # let torch pick its own default when no --threads is given
    done = subprocess.run([sys.executable, "-m", "reasonkit", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"reasonkit {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def time_eval(threads: Sequence[str], limit: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        _reasonkit("eval", "--bench", "arith", "--limit", str(limit), "--model", "builtin", "--out", out,
                   "--progress", "false", *threads)  # fmt: skip
        return float(json.loads((Path(out) / "summary.json").read_text())["wall_seconds"])


def time_solve(threads: Sequence[str], question: str) -> float:
    trace = json.loads(_reasonkit("solve", question, "--model", "builtin", "--json", *threads))
    return float(trace["cost"]["seconds"])


def time_train_step(threads: Sequence[str]) -> float:
    """One forward + backward + AdamW step of the built-in architecture (the median of 3 after a warm-up)."""
    import torch

    from reasonkit.models.builtin.checkpoint import build_model
    from reasonkit.models.builtin.config import TrainLMConfig
    from reasonkit.models.threads import set_threads

    previous = torch.get_num_threads()
    torch.manual_seed(0)
    model = build_model(TrainLMConfig(out=tempfile.gettempdir()))
    set_threads(int(threads[1]) if threads else None, model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(3, 120, (256, 96))
    times = []
    try:
        for _ in range(4):
            start = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times[1:])


def _spin() -> None:
    while True:
        pass


@contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """One busy-looping process per CPU for the duration of the block."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spin, daemon=True) for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        time.sleep(1.0)
        yield
    finally:
        for w in workers:
            w.kill()
            w.join()


def measure(config: BenchThreadsConfig) -> list[dict[str, object]]:
    cpus = os.cpu_count() or 1
    settings = {"1 thread": ["--threads", "1"], f"{cpus} threads (torch's default)": ["--threads", str(cpus)],
                "reasonkit's default": []}  # fmt: skip
    rows: list[dict[str, object]] = []
    for condition in ("idle", "loaded"):
        times: dict[tuple[str, str], list[float]] = {}
        with cpu_load(cpus) if condition == "loaded" else _nothing():
            for _ in range(config.repeats):
                for label, flags in settings.items():  # alternate settings within each repeat
                    if "eval" in config.commands:
                        times.setdefault(("eval", label), []).append(time_eval(flags, config.limit))
                    if "solve" in config.commands:
                        times.setdefault(("solve", label), []).append(time_solve(flags, config.question))
                    if "train" in config.commands:
                        times.setdefault(("train", label), []).append(time_train_step(flags))
        for command in config.commands:
            base = statistics.median(times[(command, "1 thread")])
            for label in settings:
                value = statistics.median(times[(command, label)])
                rows.append({"condition": condition, "command": command, "setting": label,
                             "seconds": round(value, 2), "ratio_to_1_thread": round(value / base, 2)})  # fmt: skip
    return rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def table(rows: Sequence[dict[str, object]], limit: int) -> str:
    lines = ["| machine | command | threads | seconds (median) | × one thread |", "|---|---|---|---:|---:|"]
    names = {"eval": f"eval --limit {limit}", "solve": "solve", "train": "train-lm step (256 x 96 tokens)"}
    for r in rows:
        lines.append(f"| {r['condition']} | {names[str(r['command'])]} | {r['setting']} | {r['seconds']} | "
                     f"{r['ratio_to_1_thread']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(BenchThreadsConfig, argv, prog="python -m reasonkit.evals.bench_threads")
    started, load = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    rows = measure(config)
    print(f"{started}, {os.cpu_count()} CPUs, load average before: {load:.2f}\n")
    print(table(rows, config.limit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
