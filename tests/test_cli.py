"""The ``reasonkit`` command as a user runs it: a real subprocess, its output and its errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fault_server import Action, FaultServer


def reasonkit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reasonkit", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_readme_first_example_prints_the_graded_answer():
    done = reasonkit("solve", "48-7*(3+2)", "--model", "builtin", "--strategy", "cot", "--answer", "13")
    assert done.returncode == 0, done.stderr
    assert "answer: 13  (correct)" in done.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ("eval", "--bench", "arith", "--out", "x", "--limit", "abc"),
            "argument --limit: expected a whole number",
        ),
        (("solve", "1+1", "--threads", "0"), "--threads must be >= 1"),
        (("solve", "1+1", "--request-timeout", "0"), "--request-timeout must be > 0"),
    ],
)
def test_bad_flags_name_the_flag_and_what_it_takes(args, needle):
    done = reasonkit(*args)
    assert done.returncode in (1, 2) and needle in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unresponsive_server_is_answered_with_cli_flags():
    with FaultServer([Action(hang=30.0)]) as srv:
        done = reasonkit(
            "solve", "1+1", "--model", f"openai:{srv.url}#m", "--request-timeout", "0.5", "--max-retries", "0"
        )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no reply within 0.5 s" in done.stderr
    assert "--request-timeout SECONDS / --max-retries N" in done.stderr and "timeout=" not in done.stderr
