"""Every runner and trainer refuses a run directory another process holds, at once, naming the holder.

Two processes on one ``--out`` used to write every record twice. (``eval lm``'s ``--out`` is one JSON
file written atomically at the end, not a run directory.) Each case starts a real holder
process (the run-directory claim every runner takes), then runs the command as a user would and
expects one error line naming the holder's pid, with nothing written into the directory.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from reasonkit.cli import main

HOLDER = """
import sys, time
from reasonkit.rundir import claim
held = claim(sys.argv[1], {"who": "another run"})
print("held", flush=True)
time.sleep(300)
"""

COMMANDS = {
    "eval": ["eval", "--bench", "arith", "--model", "builtin", "--limit", "2", "--progress", "false"],
    "eval navigator": ["eval", "navigator", "--per-ops", "1", "--progress", "false"],
    "train-navigator": ["train-navigator", "--episodes", "2", "--progress", "false"],
    "train-lm": ["train-lm", "--steps", "1", "--progress", "false"],
    "train-workspace": ["train-workspace", "--steps", "1"],
    "train-tah": ["train-tah", "--progress", "false"],
    "train-hrpo": ["train-hrpo", "--progress", "false"],
    "cola search": ["cola", "search", "--model", "builtin", "--limit", "2", "--progress", "false"],
}


@pytest.fixture
def held(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield run, holder.pid
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_second_writer_fails_at_once_naming_the_holder(held, name, capsys):
    run, pid = held
    before = sorted(p.name for p in run.iterdir())
    start = time.monotonic()
    code = main([*COMMANDS[name], "--out", str(run)])
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"in use by pid {pid}" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written beside the holder's files
    assert took < 60, f"{name} took {took:.0f} s to notice the holder"
