"""Progress bars for long-running commands, with warnings and log records printed above them.

A warning or a log record written to the terminal while a tqdm bar is drawn lands in the middle of
the bar's line and breaks it. Two tools, for every command that shows a bar:

:func:`progress_bar`
    The bar factory: a ``tqdm.auto`` bar with the project's defaults (``dynamic_ncols``) that, while
    it is open and enabled, routes warnings and console logging through :func:`print_above_bars`.
    Use it as a context manager (or call ``close()``)::

        from reasonkit.progress import progress_bar

        with progress_bar(total=len(problems), initial=len(done), desc="cot", unit="problem",
                          enabled=config.progress) as bar:
            for batch in batches:
                ...
                bar.update(len(batch))        # once per unit of work, with what it finished

:func:`print_above_bars`
    The context manager behind it, for code that prints while someone else's bar may be open (it
    nests, and is a no-op to enter twice): while active, Python ``warnings`` (shown with the usual
    ``file:line: Category: message`` text) and every ``logging`` handler that writes to the terminal
    (stdout/stderr, including logging's last-resort handler) go through ``tqdm.write``, which clears
    the bars, prints the text and redraws them below it. Log files and other handlers are untouched;
    a ``warnings.showwarning`` hook somebody else installed (``logging.captureWarnings``) is left in
    place, and its records reach the logging redirection instead.

A sane ETA needs two things from the caller, which this module cannot do for it:

- create the bar right before the loop it measures, after loading models and data (the rate is
  measured from the bar's creation);
- call ``bar.update(n)`` once per unit of work with the number of items it finished, never ``n``
  calls of ``update(1)`` at the same instant: tqdm redraws at most every 0.1 s, so the first redraw
  would see one item over the whole first unit of work and estimate the rest at that rate (this is
  what made ``train-navigator``'s first ETA read 7 hours instead of minutes: about ten episodes end
  in each batched environment step).

Imports only tqdm and the standard library (core layer).
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["print_above_bars", "progress_bar", "write"]

_lock = threading.RLock()
_depth = 0  # how many print_above_bars contexts are open (only the outermost installs the routing)
_restore: list[Any] = []  # undo actions of the installed routing, run in reverse on the last exit
_previous_showwarning: Any = warnings.showwarning  # the hook _show_warning replaced


def write(text: str, file: TextIO | None = None) -> None:
    """Print ``text`` (one message, a newline is added) above any open bars; ``file`` defaults to stderr."""
    from tqdm.auto import tqdm

    tqdm.write(text.rstrip("\n"), file=file if file is not None else sys.stderr)


@contextmanager
def print_above_bars() -> Iterator[None]:
    """While active, warnings and console log records print above open tqdm bars (module docstring).

    Re-entrant and safe to nest across threads: the routing is installed on the first entry and removed
    when the last context exits, whatever the order in which bars close.
    """
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _install()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()


def progress_bar(
    total: float | None = None,
    *,
    desc: str | None = None,
    unit: str = "it",
    initial: float = 0,
    enabled: bool = True,
    **options: Any,
) -> Any:
    """A ``tqdm.auto`` progress bar that keeps warnings and log records above itself while open.

    ``enabled=False`` gives a disabled bar (same API, prints nothing, routes nothing). ``options``
    go to tqdm (``postfix``, ``leave``, ``smoothing`` ...). Close it (``with`` block or ``close()``)
    to end the routing; an unclosed bar ends it when garbage-collected.
    """
    kwargs: dict[str, Any] = {"dynamic_ncols": True, **options}
    return _bar_class()(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, **kwargs)


_BAR_CLASS: type | None = None


def _bar_class() -> type:
    """The bar class, built on first use (tqdm.auto picks the notebook widget under Jupyter)."""
    global _BAR_CLASS
    if _BAR_CLASS is None:
        from tqdm.auto import tqdm

        class ProgressBar(tqdm):  # type: ignore[misc,valid-type]
            """tqdm that holds :func:`print_above_bars` while open and enabled."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self._routing: Any = None
                super().__init__(*args, **kwargs)
                if not self.disable:
                    self._routing = print_above_bars()
                    self._routing.__enter__()

            def close(self) -> None:
                try:
                    super().close()
                finally:
                    routing, self._routing = getattr(self, "_routing", None), None
                    if routing is not None:
                        routing.__exit__(None, None, None)

        _BAR_CLASS = ProgressBar
    return _BAR_CLASS


# ---------------------------------------------------------------- the routing


def _is_console(stream: Any) -> bool:
    return stream is sys.stdout or stream is sys.stderr


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` while routing: the stdlib's own, writing through ``tqdm.write``.

    It goes through the hook it replaced with only the file swapped, so a recorder active underneath
    (``warnings.catch_warnings(record=True)``, pytest) still records the warning instead of printing it.
    """
    target = file if file is not None else sys.stderr
    if target is not None and _is_console(target):
        target = _BarSafeStream(target)  # type: ignore[assignment]
    _previous_showwarning(message, category, filename, lineno, target, line)


class _BarSafeStream:
    """A text stream that writes through ``tqdm.write`` (for console logging handlers).

    ``stream=None`` means whatever ``sys.stderr`` is at the time of writing (logging's last resort).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> int:
        if text.strip():
            write(text, file=self.stream)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _install() -> None:
    global _previous_showwarning
    stdlib_default = getattr(warnings, "_showwarning_orig", None)
    if stdlib_default is None or warnings.showwarning is stdlib_default:
        previous = _previous_showwarning = warnings.showwarning
        warnings.showwarning = _show_warning  # type: ignore[assignment]

        def undo_warnings() -> None:
            if warnings.showwarning is _show_warning:
                warnings.showwarning = previous

        _restore.append(undo_warnings)
    # Every handler that writes to the terminal, on the root logger and on named loggers with their
    # own handlers (transformers, …): point its stream at tqdm.write, put the stream back afterwards.
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and _is_console(handler.stream):
                original = handler.stream
                handler.setStream(_BarSafeStream(original))  # type: ignore[arg-type]

                def undo_handler(handler: Any = handler, original: Any = original) -> None:
                    if isinstance(handler.stream, _BarSafeStream):
                        handler.setStream(original)

                _restore.append(undo_handler)
    # With no handler configured anywhere, logging prints WARNING and above through its last resort.
    last_resort = logging.lastResort
    if last_resort is not None:
        replacement = logging.StreamHandler(_BarSafeStream())  # type: ignore[arg-type]
        replacement.setLevel(last_resort.level)
        logging.lastResort = replacement

        def undo_last_resort() -> None:
            if logging.lastResort is replacement:
                logging.lastResort = last_resort

        _restore.append(undo_last_resort)


def _uninstall() -> None:
    while _restore:
        _restore.pop()()


@contextmanager
def quiet_transformers_bars(enabled: bool = True) -> Iterator[None]:
    """Hide transformers' own progress bars ("Loading weights", "Writing model shards") inside the
    block, and restore the previous setting after it: they are noise in a command's log and break its
    bar. ``enabled=False`` changes nothing (e.g. downloads, whose bars a user wants to see)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    if enabled and was_on:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled and was_on:
            hf_logging.enable_progress_bar()
