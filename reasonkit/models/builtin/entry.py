"""``python -m`` entry points of this package end user errors in one line, as ``reasonkit`` commands do."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence


def run_main(command: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``command(argv)``; a bad path or value prints one error line (REASONKIT_DEBUG=1 re-raises)."""
    try:
        return command(argv)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume where it stopped", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        if os.environ.get("REASONKIT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
