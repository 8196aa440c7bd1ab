"""Answer extraction and grading (reasonkit.answers): a reference table, extractor edge cases,
the Math-Verify worker's deadline, and property tests that extractors never raise or hang."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonkit.answers import (
    MathVerifier,
    canonical_number,
    extract_answer,
    extract_boxed,
    extract_choice,
    extract_int,
    extract_math,
    grade_and_extract,
    grade_many,
    is_correct,
)

# (gold, prediction, kind, expected): what a careful grader says, checked by hand.
TABLE: list[tuple[str, str, str, bool]] = [
    # math: fractions
    (r"\frac{1}{2}", r"The answer is $\boxed{\frac12}$.", "math", True),
    (r"\frac{1}{2}", r"\boxed{0.5}", "math", True),
    (r"\frac{1}{2}", r"\boxed{\dfrac{2}{4}}", "math", True),
    (r"\frac{1}{2}", r"\boxed{1/2}", "math", True),
    (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}", "math", False),
    (r"-\frac{3}{4}", r"\boxed{-0.75}", "math", True),
    (r"-\frac{3}{4}", r"\boxed{\frac{3}{4}}", "math", False),
    (r"\frac{14}{3}", r"\boxed{4\frac{2}{3}}", "math", True),
    # roots
    (r"2\sqrt{2}", r"\boxed{\sqrt{8}}", "math", True),
    (r"\frac{\sqrt{3}}{2}", r"\boxed{\frac{1}{2}\sqrt{3}}", "math", True),
    (r"\sqrt{2}", r"\boxed{2}", "math", False),
    (r"3\sqrt{13}", r"\boxed{\sqrt{117}}", "math", True),
    # pi
    (r"\frac{\pi}{2}", r"\boxed{\pi/2}", "math", True),
    (r"2\pi", r"\boxed{2 \pi}", "math", True),
    (r"2\pi", r"\boxed{6.28}", "math", False),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \frac{\pi}{2})}", "math", True),
    # intervals and sets
    (r"[-2, 7)", r"\boxed{[-2,7)}", "math", True),
    (r"[-2, 7)", r"\boxed{[-2,7]}", "math", False),
    (r"(-\infty, 0) \cup (1, \infty)", r"\boxed{(-\infty,0)\cup(1,\infty)}", "math", True),
    (r"(-\infty, 0) \cup (1, \infty)", r"\boxed{(-\infty,1)}", "math", False),
    (r"1, 3", r"\boxed{3, 1}", "math", True),
    # matrices and vectors
    (
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"\boxed{\begin{pmatrix}1&2\\3&4\end{pmatrix}}",
        "math",
        True,
    ),
    (
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"\boxed{\begin{pmatrix}1&2\\4&3\end{pmatrix}}",
        "math",
        False,
    ),
    (
        r"\begin{pmatrix} -1 \\ 2 \end{pmatrix}",
        r"\boxed{\begin{pmatrix} -1 \\ 2 \end{pmatrix}}",
        "math",
        True,
    ),
    # units, degrees, percentages, money
    (r"12", r"\boxed{12 \text{ cm}}", "math", True),
    (r"90^\circ", r"\boxed{90}", "math", True),
    (r"25\%", r"\boxed{25}", "math", True),
    (r"25\%", r"\boxed{25\%}", "math", True),
    (r"\$32", r"\boxed{32}", "math", True),
    (r"12", r"\boxed{13 \text{ cm}}", "math", False),
    # thousands separators, negatives, expressions, text
    (r"10080", r"\boxed{10,080}", "math", True),
    (r"-7", r"\boxed{-7}", "math", True),
    (r"-7", r"\boxed{7}", "math", False),
    (r"x^2+2x+1", r"\boxed{(x+1)^2}", "math", True),
    (r"x^2+2x+1", r"\boxed{(x-1)^2}", "math", False),
    (r"\text{Evelyn}", r"\boxed{\text{Evelyn}}", "math", True),
    (r"\text{Evelyn}", r"\boxed{\text{Bob}}", "math", False),
    (r"3", r"no final answer here", "math", False),
    (r"5", r"", "math", False),
    # integers (AIME, GSM8K, arith)
    ("25", r"so the answer is $\boxed{025}$", "int", True),
    ("025", "The answer is 25.", "int", True),
    ("18", "#### 18", "int", True),
    ("18", "The answer is 18.0", "int", True),
    ("1234", "Answer: 1,234", "int", True),
    ("1234", r"\boxed{1{,}234}", "int", True),
    ("-3", "The answer is -3", "int", True),
    ("-3", "The answer is 3", "int", False),
    ("−3", "Answer: −3", "int", True),
    ("42", "We get 40 first, then 2 more, so 42", "int", True),
    ("42", "The answer is 41. Checking: 42 would exceed the limit", "int", False),
    ("7", r"\boxed{x = 7}", "int", True),
    ("70", r"\boxed{70\%}", "int", True),
    ("18", r"\boxed{\$18}", "int", True),
    ("18", "18.5", "int", False),
    ("1024", r"\boxed{2^{10}}", "int", False),
    ("5", "no number at all", "int", False),
    ("42", r"**Answer:** \textbf{42}", "int", True),
    ("5", r"\boxed{\text{5 apples}}", "int", True),
    ("12", r"\boxed{12\,\text{cm}}", "int", True),
    ("12", "6 + 6 = 12", "arith", True),
    ("12", "6 + 6 = 13", "arith", False),
    # choices (GPQA)
    ("C", "Let me think... Answer: C", "choice", True),
    ("C", "**Answer: C**", "choice", True),
    ("B", "The correct answer is (B).", "choice", True),
    ("B", r"Answer: $\boxed{B}$", "choice", True),
    ("D", "(A) is wrong since ... so D) it is", "choice", True),
    ("A", "$A$", "choice", True),
    ("A", "Answer: A is tempting, but the answer is B", "choice", False),
    ("B", "Answer: A is tempting, but the answer is B", "choice", True),
    ("A", "the answer is a bit unclear", "choice", False),
    ("C", "Answer: D", "choice", False),
    ("B", "B", "choice", True),
]


def test_reference_table_has_every_category():
    kinds = {kind for _, _, kind, _ in TABLE}
    assert len(TABLE) >= 60 and kinds == {"math", "int", "arith", "choice"}
    assert sum(not expected for *_, expected in TABLE) >= 20


def test_reference_table_one_batch():
    got = grade_many([(prediction, gold, kind) for gold, prediction, kind, _ in TABLE])
    wrong = [i for i, (row, verdict) in enumerate(zip(TABLE, got)) if verdict != row[3]]
    assert not wrong, [TABLE[i] for i in wrong]


@pytest.mark.parametrize("row", TABLE[::7], ids=lambda r: f"{r[2]}:{r[1][:24]}")
def test_is_correct_matches_batch(row):
    gold, prediction, kind, expected = row
    assert is_correct(prediction, gold, kind) is expected


def test_extract_boxed_nested_truncated_and_braceless():
    assert extract_boxed(r"\boxed{\frac{1}{2}} then \boxed{3") == r"\frac{1}{2}"
    assert extract_boxed(r"first \boxed{1}, finally \boxed{\{1, 2\}}") == r"\{1, 2\}"
    assert extract_boxed(r"so $\boxed 5$") == "5"
    assert extract_boxed(r"\fbox{7}") == "7"
    assert extract_boxed("no box") is None
    assert extract_boxed(r"\boxed{") is None


def test_extract_int_priorities_and_forms():
    assert extract_int(r"\boxed{12} but the answer is 13") == "12"
    assert extract_int("#### 1,234\nThe answer is 5") == "1234"
    assert extract_int("The answer is 7. Then 8 more.") == "7"
    assert extract_int("no anchors: 3 then 4.5") == "4.5"
    assert extract_int(r"\boxed{3 \text{ and } 4}") is None  # a box that states two numbers is no answer
    assert extract_int("x - 5 = 0") == "0"
    assert extract_int("") is None
    assert canonical_number("-0012.50") == "-12.5"
    assert canonical_number("+1,000") == "1000" and canonical_number("7.") == "7"
    for not_plain in ("1e999999999", "abc", "1-2", "", "NaN", "inf"):
        assert canonical_number(not_plain) is None, not_plain


def test_extract_choice_stated_beats_loose_and_last_wins():
    assert extract_choice("(A) and (B) are options. Answer: C\n(D) is wrong") == "C"
    assert extract_choice("Answer: A ... on reflection the answer is D") == "D"
    assert extract_choice("E) is right", n_choices=5) == "E"
    assert extract_choice("E) is right") is None  # only A-D exist by default
    assert extract_choice("answer: b") is None  # lowercase letters are words, not options
    assert extract_choice("nothing") is None
    with pytest.raises(ValueError, match="n_choices"):
        extract_choice("A", n_choices=1)


def test_extract_answer_per_kind():
    assert extract_answer(r"so \boxed{\dfrac{1}{2}}.", "math") == r"\frac{1}{2}"
    assert extract_answer(r"the answer is $x = 3$", "math") == "x=3"
    assert extract_answer("#### 0042", "int") == "42"
    assert extract_answer("Answer: B", "choice") == "B"
    assert extract_math("nothing") is None
    # a plain statement without $…$ (the built-in model's "The answer is 13")
    assert extract_answer("48-35=13|13;The answer is 13", "math") == "13"
    assert extract_math("Final answer: x + 1.") == "x + 1"


def test_graded_answer_is_the_one_the_grader_read():
    # Math-Verify reads the last expression of an unmarked response; the trace must show that answer,
    # not the regex extractor's (None here), so "answer: None (correct)" cannot happen.
    checked = grade_and_extract(
        [
            ("first 5, then finally 7", "7", "math"),
            (r"so $\boxed{\dfrac{1}{2}}$", "0.5", "math"),
            ("The answer is 13", "13", "math"),
            ("#### 0042", "42", "int"),
            ("(A) looks tempting, but\nAnswer: C", "C", "choice"),
            ("no answer here", "3", "int"),
        ]
    )
    assert checked == [
        (True, "7"),
        (True, r"\frac{1}{2}"),
        (True, "13"),
        (True, "42"),
        (True, "C"),
        (False, None),
    ]
    assert extract_math("first 5, then finally 7") is None  # why the grader's reading is needed


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="unknown answer kind 'latex'"):
        is_correct("1", "1", "latex")
    with pytest.raises(ValueError, match="an int gold answer must be a number"):
        is_correct("The answer is 3", "three", "int")
    with pytest.raises(ValueError, match="one letter A-Z"):
        is_correct("Answer: A", "option 1", "choice")
    with pytest.raises(TypeError, match="item 0"):
        grade_many([(None, "1", "int")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="timeout"):
        MathVerifier(timeout=0)


def test_choice_gold_beyond_d_widens_letters():
    assert is_correct("Answer: F", "F", "choice")
    assert not is_correct("Answer: F", "F", "choice", n_choices=4)


def test_math_deadline_kills_and_restarts_worker():
    verifier = MathVerifier(timeout=1.5)
    try:
        start = time.monotonic()
        # sympy would take far longer than the deadline to settle this; the grader must give up on it.
        verdicts = verifier.verify_many([(r"\boxed{(10^{10^{10}})!}", "1"), (r"\boxed{2}", "2")])
        elapsed = time.monotonic() - start
        assert verdicts == [None, True]
        assert verifier.timeouts == 1 and verifier.restarts == 1
        assert elapsed < 30
    finally:
        verifier.close()


def test_math_grading_from_threads():
    results: list[bool] = []
    lock = threading.Lock()

    def grade(gold: str, prediction: str) -> None:
        verdict = is_correct(prediction, gold, "math")
        with lock:
            results.append(verdict)

    pairs = [(r"\frac{\sqrt{2}}{2}", r"\boxed{\sqrt{2}/2}"), ("3", r"\boxed{4}")] * 3
    threads = [threading.Thread(target=grade, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 3 + [True] * 3


def test_each_threads_deadline_holds_under_concurrency():
    """Four threads, each with a hostile answer first: before the worker pool, one worker served every
    call in turn, so the last thread waited for everyone's deadlines (35.7 s against 10 s)."""
    verifier = MathVerifier(timeout=2.0)
    verifier.warm(4)  # start-up is not the deadline's business
    assert verifier.workers() == 4
    took: list[float] = []
    verdicts: list[list[bool | None]] = []
    lock = threading.Lock()

    def grade() -> None:
        start = time.monotonic()
        got = verifier.verify_many([(r"\boxed{(10^{10^{10}})!}", "1")])  # hostile: hits the deadline
        with lock:
            took.append(time.monotonic() - start)
            verdicts.append(got)

    try:
        threads = [threading.Thread(target=grade) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert verdicts == [[None]] * 4 and verifier.timeouts == 4
        # each call waits for its own 2 s deadline only; served in turn, the last would wait >= 8 s
        assert max(took) < 5.0, took
        assert verifier.verify_many([(r"\boxed{2}", "2")]) == [True]  # and grading goes on
    finally:
        verifier.close()
    assert verifier.workers() == 0


def test_factorial_in_a_box_is_not_its_operand():
    assert not is_correct(r"\boxed{5!}", "5", "int")
    assert is_correct(r"\boxed{120}", "120", "int")
    assert extract_int(r"so \boxed{5\!} apples") == "5"  # \! is a LaTeX thin space, not a factorial


def test_a_gold_answer_ending_in_a_full_stop():
    assert is_correct(r"\boxed{3}", "3.", "math")
    assert not is_correct(r"\boxed{4}", "3.", "math")
    assert is_correct(r"\boxed{3}", "3.", "int")


EXTRACTORS = [extract_boxed, extract_int, extract_choice, extract_math]
PIECES = [
    "\\boxed{",
    "\\boxed ",
    "{",
    "}",
    "Answer:",
    "answer is ",
    "####",
    "(",
    ")",
    "A",
    "B)",
    "$",
    "**",
    "1",
    ",",
    "234",
    ".",
    "-",
    " ",
    "\n",
    "\\text{",
    "\\frac",
    "=",
    "%",
]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_extractors_never_raise_on_arbitrary_text(text):
    for extract in EXTRACTORS:
        extract(text)
    extract_answer(text, "math")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=200).map("".join))
def test_extractors_never_raise_on_answer_like_text(text):
    for extract in EXTRACTORS:
        result = extract(text)
        assert result is None or isinstance(result, str)
    number = extract_int(text)
    assert number is None or canonical_number(number) == number


@pytest.mark.parametrize(
    "text",
    [
        "\\boxed{" * 50_000,
        "{" * 50_000 + "}" * 50_000,
        "answer" + " " * 100_000 + "x",
        "Answer: " * 20_000,
        "1," * 50_000,
        "(A" * 50_000,
        "answer:" + "\t:" * 50_000 + "!",
        "\\boxed{\\text{" * 20_000,
        "A)\n" * 30_000,
    ],
    ids=lambda t: repr(t[:12]),
)
def test_extractors_stay_linear_on_adversarial_text(text):
    start = time.monotonic()
    for extract in EXTRACTORS:
        extract(text)
    assert time.monotonic() - start < 5.0  # about 0.3 s measured; quadratic backtracking would take minutes
