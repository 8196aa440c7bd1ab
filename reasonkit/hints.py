"""Fix hints in error messages, phrased for where the user is: command-line flags or Python arguments.

An error raised deep in the library ("the server did not reply in time") should name a fix the
reader can apply where they are. ``reasonkit`` commands call :func:`use_command_line_hints` once at
start-up; library code phrases its advice with :func:`fix_hint`::

    raise BackendError(f"... {fix_hint('--request-timeout SECONDS', 'timeout=SECONDS')}")

prints ``--request-timeout SECONDS`` under the CLI and ``timeout=SECONDS`` in a Python program.
"""

from __future__ import annotations

_COMMAND_LINE = False


def use_command_line_hints(enabled: bool = True) -> None:
    """Phrase fixes as command-line flags from now on (the ``reasonkit`` entry point calls this)."""
    global _COMMAND_LINE
    _COMMAND_LINE = enabled


def fix_hint(flag: str, argument: str) -> str:
    """``flag`` when running a ``reasonkit`` command, ``argument`` (the Python form) otherwise."""
    return flag if _COMMAND_LINE else argument
