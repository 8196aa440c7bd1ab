"""reasonkit.progress: warnings and log records print on their own lines above an open bar.

The output is checked the way a terminal shows it (``\\r`` returns to column 0 and overwrites): with
the routing, a warning's text is a line of its own and the bar is redrawn below it; without it (the
reference the first test also renders), the warning is glued to the bar's line.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from reasonkit.progress import print_above_bars, progress_bar, write


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text`` (``\\r`` overwrites from column 0, ``\\n`` starts a line)."""
    lines: list[list[str]] = [[]]
    col = 0
    for ch in text:
        if ch == "\n":
            lines.append([])
            col = 0
        elif ch == "\r":
            col = 0
        else:
            line = lines[-1]
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return ["".join(line).rstrip() for line in lines if "".join(line).strip()]


def _bar(**options):
    # mininterval=0: every update draws, so the bar is on screen when the warning comes.
    return progress_bar(total=10, desc="work", unit="item", mininterval=0, **options)


_WARN_DURING_A_BAR = """
import sys, warnings
warnings.simplefilter("always")
if sys.argv[1] == "routed":
    from reasonkit.progress import progress_bar as bar_class
else:
    from tqdm import tqdm as bar_class
with bar_class(total=10, desc="work", unit="item", mininterval=0) as bar:
    bar.update(5)
    warnings.warn("the context is short", RuntimeWarning)
    bar.update(5)
print("restored" if warnings.showwarning is warnings._showwarning_orig else "still routed")
"""


def _terminal(mode: str) -> tuple[list[str], str]:
    # A fresh interpreter: pytest records warnings instead of printing them.
    done = subprocess.run(
        [sys.executable, "-c", _WARN_DURING_A_BAR, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return screen(done.stderr), done.stdout.strip()


def test_a_warning_prints_above_an_open_bar_not_inside_it():
    routed, after = _terminal("routed")
    message = [line for line in routed if "RuntimeWarning: the context is short" in line]
    assert message == ["<string>:10: RuntimeWarning: the context is short"], routed
    assert routed[-1].startswith("work: 100%")  # the bar, redrawn below the warning
    assert after == "restored"
    # The reference: the same sequence under a plain tqdm bar glues the warning to the bar's line.
    broken, _ = _terminal("plain")
    glued = [line for line in broken if "RuntimeWarning: the context is short" in line]
    assert len(glued) == 1 and glued[0].startswith("work:  50%"), broken


def test_warnings_are_still_recorded_under_an_open_bar():
    with _bar(), pytest.warns(RuntimeWarning, match="recorded"):
        warnings.warn("recorded", RuntimeWarning, stacklevel=1)
    with pytest.warns(RuntimeWarning, match="recorded"), _bar():  # entered in the other order
        warnings.warn("recorded", RuntimeWarning, stacklevel=1)


def test_log_records_print_above_the_bar_and_handlers_are_restored(capsys):
    logger = logging.getLogger("reasonkit.test_progress")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("LOG %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with _bar() as bar:
            bar.update(3)
            logger.warning("cache is cold")
            bar.update(7)
        assert handler.stream is sys.stderr
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = screen(capsys.readouterr().err)
    assert "LOG WARNING cache is cold" in lines, lines
    assert lines[-1].startswith("work: 100%")


def test_records_without_any_handler_use_the_last_resort_above_the_bar(capsys):
    logger = logging.getLogger("reasonkit.test_progress.bare")
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []  # no handler anywhere: logging's last resort prints WARNING and above
    last_resort = logging.lastResort
    try:
        with _bar() as bar:
            bar.update(3)
            logger.warning("no handler configured")
            logger.info("below the last resort's level")
            bar.update(7)
        assert logging.lastResort is last_resort
    finally:
        root.handlers = saved
    lines = screen(capsys.readouterr().err)
    assert "no handler configured" in lines, lines
    assert not any("below the last resort" in line for line in lines)


def test_a_disabled_bar_routes_nothing():
    original = warnings.showwarning
    with progress_bar(total=3, enabled=False) as bar:
        assert warnings.showwarning is original
        bar.update(3)
    assert bar.disable


def test_routing_nests_and_ends_with_the_last_bar_whatever_the_order(capsys):
    original = warnings.showwarning
    first, second = _bar(), _bar(position=1)
    first.close()
    assert warnings.showwarning is not original  # the second bar is still open
    with print_above_bars():
        pass
    assert warnings.showwarning is not original
    second.close()
    assert warnings.showwarning is original


def test_a_hook_installed_by_someone_else_is_left_alone(capsys):
    logging.captureWarnings(True)
    try:
        hook = warnings.showwarning
        with _bar():
            assert warnings.showwarning is hook
    finally:
        logging.captureWarnings(False)


def test_write_prints_one_line_above_the_bars(capsys):
    with _bar() as bar:
        bar.update(2)
        write("checkpoint saved\n")
    lines = screen(capsys.readouterr().err)
    assert "checkpoint saved" in lines


@pytest.mark.filterwarnings("error")
def test_warning_filters_still_apply_while_routing():
    with _bar(), pytest.raises(UserWarning):
        warnings.warn("escalated", UserWarning, stacklevel=1)


def test_transformers_bars_are_hidden_inside_and_restored_after():
    from transformers.utils import logging as hf_logging

    from reasonkit.progress import quiet_transformers_bars

    assert hf_logging.is_progress_bar_enabled()
    with quiet_transformers_bars():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    with pytest.raises(RuntimeError), quiet_transformers_bars():
        raise RuntimeError("restored on errors too")
    assert hf_logging.is_progress_bar_enabled()
    with quiet_transformers_bars(enabled=False):  # downloads keep their bars
        assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:  # someone else turned them off: they stay off
        with quiet_transformers_bars():
            pass
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
