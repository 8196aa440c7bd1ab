"""Answer extraction and grading: what counts as correct, agreed with the standard harnesses.

Three kinds of gold answer (``Problem.kind``), each with its extractor:

- ``"int"`` (AIME, AMC, GSM8K; ``"arith"`` grades the same way): :func:`extract_int` reads, in
  order of trust, the last ``\\boxed{…}``, the last ``#### X``, the last "answer is X" / "Answer: X",
  then the last number in the text; it drops thousands separators, leading zeros, signs of LaTeX
  ("$", "\\%", "{,}") and compares numerically, so "18.0" == "18" and "1,234" == "1234".
- ``"choice"`` (GPQA): :func:`extract_choice` reads "Answer: B", "\\boxed{B}", then loose markers
  "(B)", "B)", "$B$", "**B**" or a bare letter on its own line; the last stated option wins, and an
  "answer" statement outranks a loose marker.
- ``"math"`` (MATH-500): Math-Verify, as lighteval does: ``parse`` with ``LatexExtractionConfig``
  (boxed first) + ``ExprExtractionConfig``, gold parsed from ``\\boxed{gold}``, ``verify(gold, pred)``
  with gold first. Math-Verify's own timeouts use ``signal.alarm`` and fail outside the main thread,
  so they are switched off and :class:`MathVerifier` enforces a deadline instead: a persistent
  worker process, killed and restarted when an answer takes too long. It works from any thread.

Nothing here evaluates model output as code. The extractors scan text with linear-time patterns and
never raise, whatever the input.

    >>> is_correct("so the answer is $\\\\boxed{025}$", "25", "int")
    True
    >>> extract_choice("(A) looks tempting, but\\nAnswer: C")
    'C'
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO

KINDS: tuple[str, ...] = ("math", "int", "choice", "arith")
DEFAULT_MATH_TIMEOUT = 10.0  # seconds per answer for parse + parse + verify (lighteval: 5 s each)

# ---------------------------------------------------------------- boxed


def _matching_braces(text: str) -> dict[int, int]:
    """Map each '{' to its matching '}' in one pass (O(n), so no input can make extraction quadratic)."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, ch in enumerate(text):
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            stack.append(i)
        elif ch == "}" and (i == 0 or text[i - 1] != "\\") and stack:
            pairs[stack.pop()] = i
    return pairs


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{…}`` (or ``\\fbox{…}``, ``\\boxed 5``), else None."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    matches = list(_BOXED.finditer(text))
    pairs = _matching_braces(text) if any(m.group(1) for m in matches) else {}
    for m in reversed(matches):
        if m.group(1):
            end = pairs.get(m.start(1))
            if end is not None:
                return text[m.start(1) + 1 : end].strip()
        else:
            # "\boxed 5": the argument is the next token (up to a space, '$' or end).
            token = re.match(r"[^\s$]+", text[m.end() :])
            if token:
                return token.group(0)
    return None


# ---------------------------------------------------------------- integers

_PLAIN_DECIMAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_NUMBER = re.compile(r"(?:(?<![\w)\]}.])[-+])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])")
_TEXT = re.compile(r"\\(?:text(?:bf|rm|it)?|mbox)\s*\{([^{}]*)\}")
_LATEX_NOISE = [
    (re.compile(r"\{,\}|\\[,!;:]|\\ "), ""),  # LaTeX thin spaces and {,} thousands separators
    (re.compile(r"\\\$|\\%|\$|%|\^\s*\{?\\circ\}?|\\(?:left|right|dfrac|tfrac|frac|mathrm|mathbf)\b"), " "),
    (re.compile(r"[−–]"), "-"),  # unicode minus and dash
]


def _strip_latex(text: str) -> str:
    # \text{ cm} is a unit (dropped); \textbf{42} is the answer itself (unwrapped).
    text = _TEXT.sub(lambda m: m.group(1) if any(c.isdigit() for c in m.group(1)) else " ", text)
    for pattern, repl in _LATEX_NOISE:
        text = pattern.sub(repl, text)
    return text


def canonical_number(token: str) -> str | None:
    """``"-1,234.50"`` -> ``"-1234.5"``, ``"025"`` -> ``"25"``, ``"18.0"`` -> ``"18"``; None if not a number."""
    cleaned = token.replace(",", "").strip().lstrip("+")
    # Plain decimals only: an exponent such as "1e999999999" would make Decimal build a billion digits.
    if len(cleaned) > 200 or not _PLAIN_DECIMAL.fullmatch(cleaned):
        return None
    value = Decimal(cleaned)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


_FACTORIAL = re.compile(r"\d\s*!")


def _single_number(fragment: str) -> str | None:
    """The number a short fragment states ("x = 5", "$18$ apples"), or None when it states none or several
    ("5!" states 120, not 5: a factorial is not its operand)."""
    cleaned = _strip_latex(fragment)
    if _FACTORIAL.search(cleaned):
        return None
    if "=" in cleaned:
        cleaned = cleaned.rsplit("=", 1)[1]
    numbers = _NUMBER.findall(cleaned)
    return canonical_number(numbers[0]) if len(numbers) == 1 else None


_HASHES = re.compile(r"####\s*")
_ANSWER_IS = re.compile(r"(?i)\banswer\b(?:\s+is)?\s*[:：]?")


def extract_int(text: str) -> str | None:
    """The integer (or decimal) a response gives as its answer, canonicalised, else None.

    Order: last ``\\boxed{}`` (if present it is final, even when it holds no single number), last
    ``#### X``, last "answer is X" / "Answer: X" followed by a number on the same line, last number.
    """
    boxed = extract_boxed(text)
    if boxed is not None:
        return _single_number(boxed)
    for anchor in (_HASHES, _ANSWER_IS):
        # Only the last few anchors matter; bounding them keeps pathological inputs linear.
        for m in reversed(list(anchor.finditer(text))[-20:]):
            line = text[m.end() : m.end() + 120].split("\n", 1)[0]
            numbers = _NUMBER.findall(_strip_latex(line))
            if numbers:
                return canonical_number(numbers[0])
    numbers = _NUMBER.findall(_strip_latex(text[-4000:]))
    return canonical_number(numbers[-1]) if numbers else None


def _same_number(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return Decimal(a) == Decimal(b)


# ---------------------------------------------------------------- choices


def _letters(n_choices: int) -> str:
    if not 2 <= n_choices <= 26:
        raise ValueError(f"n_choices must be between 2 and 26, got {n_choices}")
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_choices]


def _choice_patterns(letters: str) -> tuple[re.Pattern[str], list[re.Pattern[str]]]:
    L = f"[{letters}]"
    # Each wrapper is followed by its own spaces, never preceded by optional ones, so no input can make
    # the pattern backtrack more than linearly.
    wrapper = r"(?:\*\*|\$|\\\(|\\text(?:bf)?\{|\\boxed\{|\(|\[)\s*"
    stated = re.compile(
        rf"(?:(?i:\banswer\b)(?:\s+(?i:is))?[\s:：]*(?:{wrapper}){{0,6}}|\\boxed\{{\s*(?:\\text(?:bf)?\{{)?\(?)"
        rf"({L})(?![A-Za-z0-9])"
    )
    loose = [
        re.compile(rf"\(({L})\)"),
        re.compile(rf"(?<![A-Za-z0-9\\])({L})\)"),
        re.compile(rf"\$({L})\$|\*\*({L})\*\*"),
        re.compile(rf"(?m)^[ \t]*\(?({L})[).:]?[ \t]*$"),
        re.compile(rf"\A\s*({L})[.):](?:\s|$)"),
    ]
    return stated, loose


_CHOICE_CACHE: dict[str, tuple[re.Pattern[str], list[re.Pattern[str]]]] = {}


def extract_choice(text: str, n_choices: int = 4) -> str | None:
    """The option letter a response picks (``A``… for ``n_choices`` options), else None.

    A stated answer ("Answer: B", "the answer is (B)", "\\boxed{B}") outranks a loose marker ("(B)",
    "B)", "$B$", "**B**", a letter alone on a line); among equals the last one wins. Letters must be
    capitals: "the answer is a bit …" is not option A.
    """
    letters = _letters(n_choices)
    if letters not in _CHOICE_CACHE:
        _CHOICE_CACHE[letters] = _choice_patterns(letters)
    stated, loose = _CHOICE_CACHE[letters]
    last = None
    for m in stated.finditer(text):
        last = m
    if last is not None:
        return last.group(1)
    best: tuple[int, str] | None = None
    for pattern in loose:
        for m in pattern.finditer(text):
            letter = next(g for g in m.groups() if g)
            if best is None or m.start() > best[0]:
                best = (m.start(), letter)
    return best[1] if best else None


# ---------------------------------------------------------------- math answers as strings

_FINAL_ANSWER_MATH = re.compile(r"(?i)answer\s+is\s*:?\s*\$([^$\n]{1,300})\$")
# "The answer is 13." / "Final answer: x+1": the rest of the line, without a closing full stop.
_FINAL_ANSWER_PLAIN = re.compile(r"(?i)\banswer(?:\s+is|\s*:)\s*([^$\n]{1,300})")


def extract_math(text: str) -> str | None:
    """The LaTeX answer a response states (last ``\\boxed{}``, else "answer is $…$", else the rest of the
    line after "answer is" / "answer:"), for votes and for traces of ungraded problems.

    Grading does not use this string: Math-Verify reads the whole response itself, and a graded
    trace shows the answer Math-Verify extracted (:func:`grade_and_extract`).
    """
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    found = _FINAL_ANSWER_MATH.findall(text)
    if found:
        return found[-1].strip()
    plain = _FINAL_ANSWER_PLAIN.findall(text[-4000:])
    stated = plain[-1].strip().rstrip(".").strip() if plain else ""
    return stated or None


def normalize_math(answer: str) -> str:
    """A light canonical form of a LaTeX answer, so equal answers vote together in majority voting."""
    text = re.sub(r"\\[dt]frac", r"\\frac", answer)
    text = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\ |\$|\s+", "", text)
    text = re.sub(r"\^\{?\\circ\}?|\\%|%", "", text)
    return text.rstrip(".")


def extract_answer(text: str, kind: str, n_choices: int = 4) -> str | None:
    """The answer a response gives, in the canonical form used for voting and for ``Trace.answer``."""
    _check_kind(kind)
    if kind in ("int", "arith"):
        return extract_int(text)
    if kind == "choice":
        return extract_choice(text, n_choices)
    found = extract_math(text)
    return normalize_math(found) if found is not None else None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; use one of {KINDS}")


# ---------------------------------------------------------------- grading


def is_correct(prediction: str, gold: str, kind: str, *, n_choices: int | None = None) -> bool:
    """Whether a model's response ``prediction`` answers ``gold`` correctly.

    ``kind`` is "math", "int", "choice" or "arith" (graded as "int"). For "choice", ``n_choices``
    defaults to 4, or enough letters to include ``gold``. Math grading runs in the shared
    :class:`MathVerifier` (a timeout counts as wrong) and is safe to call from any thread.
    """
    return grade_many([(prediction, gold, kind)], n_choices=n_choices)[0]


def grade_many(
    items: Sequence[tuple[str, str, str]],
    *,
    n_choices: int | None = None,
    verifier: MathVerifier | None = None,
) -> list[bool]:
    """Grade many ``(prediction, gold, kind)`` triples; math ones go to the worker in one batch."""
    return [ok for ok, _ in grade_and_extract(items, n_choices=n_choices, verifier=verifier)]


def grade_and_extract(
    items: Sequence[tuple[str, str, str]],
    *,
    n_choices: int | None = None,
    verifier: MathVerifier | None = None,
) -> list[tuple[bool, str | None]]:
    """Like :func:`grade_many`, with the answer each verdict was about: the extractor's result for
    int / arith / choice, Math-Verify's own extraction (light-normalised) for math. A trace shows this
    answer, so the answer printed is always the answer graded."""
    results: list[tuple[bool, str | None]] = [(False, None)] * len(items)
    math_index: list[int] = []
    for i, (prediction, gold, kind) in enumerate(items):
        _check_kind(kind)
        if not isinstance(prediction, str) or not isinstance(gold, str):
            raise TypeError(f"item {i}: prediction and gold must be strings")
        if kind in ("int", "arith"):
            number = canonical_number(_strip_latex(gold).strip())
            if number is None:
                raise ValueError(f"item {i}: an {kind} gold answer must be a number, got {gold[:40]!r}")
            found = extract_int(prediction)
            results[i] = (_same_number(found, number), found)
        elif kind == "choice":
            letter = gold.strip().upper()
            if not re.fullmatch(r"[A-Z]", letter):
                raise ValueError(f"item {i}: a choice gold answer must be one letter A-Z, got {gold!r}")
            n = n_choices or max(4, ord(letter) - ord("A") + 1)
            found = extract_choice(prediction, n)
            results[i] = (found == letter, found)
        elif prediction.strip() and gold.strip():
            math_index.append(i)
    if math_index:
        checked = (verifier or default_verifier()).check_many(
            [(items[i][0], _drop_full_stop(items[i][1])) for i in math_index]
        )
        for i, (verdict, extracted) in zip(math_index, checked):
            results[i] = (bool(verdict), normalize_math(extracted) if extracted else None)
    return results


def _drop_full_stop(gold: str) -> str:
    """A gold answer written as a sentence ("3.") means 3: Math-Verify reads it so, but not once it is
    wrapped in ``\\boxed{}``. An ellipsis ("1, 2, ...") keeps its dots."""
    return re.sub(r"(?<!\.)\.\s*$", "", gold.strip()) or gold


# ---------------------------------------------------------------- the math worker process


def _serve_math_worker() -> None:
    """Worker loop (runs in the child): one JSON request per stdin line, one verdict per stdout line."""
    import logging
    import warnings

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    warnings.simplefilter("ignore")
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError as exc:
        protocol.write(json.dumps({"error": f"cannot import math_verify ({exc}); pip install math-verify"}))
        protocol.write("\n")
        protocol.flush()
        return
    gold_config = [LatexExtractionConfig(), ExprExtractionConfig()]
    pred_config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    protocol.write('{"ready": true}\n')
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        ok, extracted = False, None
        try:
            gold = parse("\\boxed{" + request["gold"] + "}", gold_config, parsing_timeout=None)
            pred = parse(request["pred"], pred_config, parsing_timeout=None)
            # parse returns [sympy object, the string it was read from] (or [] when nothing parsed)
            extracted = str(pred[-1]) if pred else None
            ok = bool(verify(gold, pred, timeout_seconds=None))
        except Exception:  # Math-Verify failing on odd input means "not shown equal", never a crash
            ok = False
        protocol.write(json.dumps({"ok": ok, "pred": extracted}) + "\n")
        protocol.flush()


class _Worker:
    """One Math-Verify worker process and the queue its stdout lines arrive on."""

    def __init__(self, startup_timeout: float) -> None:
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from reasonkit.answers import _serve_math_worker; _serve_math_worker()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        hello = self.next_line(startup_timeout)
        if hello is None or "ready" not in hello:
            self.stop()
            detail = json.loads(hello).get("error", hello) if hello else "no reply"
            raise RuntimeError(f"the Math-Verify worker process did not start: {detail}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def next_line(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def ask(self, prediction: str, gold: str, timeout: float) -> tuple[bool, str | None] | None:
        """One verdict, or None when the deadline passed or the worker died (then it is dead)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"pred": prediction, "gold": gold}) + "\n")
            self.proc.stdin.flush()
            reply = self.next_line(timeout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            self.stop()
            return None
        answer = json.loads(reply)
        return bool(answer["ok"]), answer.get("pred")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class MathVerifier:
    """Math-Verify in worker processes with a per-answer deadline that holds in any thread.

    Each call takes an idle worker or starts one, so concurrent callers never queue behind each other:
    with four threads each answer still gets its own ``timeout`` (plus, the first time a thread needs
    a fresh worker, its start-up). Past the deadline that worker is killed and the answer gets ``None``
    (no verdict). At most ``keep`` idle workers are kept between calls. ``timeouts`` and ``restarts``
    count what happened.
    """

    def __init__(
        self, timeout: float = DEFAULT_MATH_TIMEOUT, startup_timeout: float = 120.0, keep: int = 4
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.keep = keep
        self.timeouts = 0
        self.restarts = 0
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.stop()
                self.restarts += 1
        return _Worker(self.startup_timeout)

    def _give(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive() and len(self._idle) < self.keep:
                self._idle.append(worker)
                return
        worker.stop()

    def verify_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool | None]:
        """``verify(parse(gold), parse(prediction))`` for each ``(prediction, gold)``; None on timeout."""
        return [verdict for verdict, _ in self.check_many(pairs)]

    def check_many(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bool | None, str | None]]:
        """:meth:`verify_many`'s verdicts with the answer string Math-Verify read from each prediction."""
        out: list[tuple[bool | None, str | None]] = []
        worker: _Worker | None = None
        try:
            for prediction, gold in pairs:
                if worker is None:
                    worker = self._take()
                verdict = worker.ask(prediction, gold, self.timeout)
                if verdict is None:  # deadline passed, or the worker died on this answer
                    with self._lock:
                        self.timeouts += 1
                        self.restarts += 1
                    worker = None
                    out.append((None, None))
                    continue
                out.append(verdict)
        finally:
            if worker is not None:
                self._give(worker)
        return out

    def warm(self, count: int) -> None:
        """Start idle workers until ``count`` (at most ``keep``) wait, e.g. before a threaded server starts."""
        started: list[_Worker] = []
        while self.workers() + len(started) < min(count, self.keep):
            started.append(_Worker(self.startup_timeout))
        for worker in started:
            self._give(worker)

    def workers(self) -> int:
        """Idle worker processes kept for the next calls."""
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    """Move the worker's stdout lines into a queue, so the parent can wait on them with a deadline."""
    if stream is None:
        return
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):  # stream closed under us when the worker is killed
        pass
    lines.put(None)


_DEFAULT: MathVerifier | None = None
_DEFAULT_LOCK = threading.Lock()


def default_verifier() -> MathVerifier:
    """The process-wide :class:`MathVerifier` (started on first use, stopped at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = MathVerifier()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
