"""Metrics against hand-computed values and a brute-force definition of pass@k."""

from __future__ import annotations

import itertools
import math

import pytest

from reasonkit.evals.metrics import (
    accuracy,
    avg_at_n,
    breakdown,
    ks_for,
    maj_at_k,
    pass_at_k,
    sample_metrics,
    stderr,
)


def brute_pass_at_k(verdicts: list[bool], k: int) -> float:
    """The definition: the share of k-subsets holding at least one correct sample."""
    subsets = list(itertools.combinations(range(len(verdicts)), k))
    return sum(any(verdicts[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_hand_values():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 8, 3) == 1.0  # fewer wrong samples than k: any draw holds a correct one
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(1000, 10, 100) == pytest.approx(1 - math.comb(990, 100) / math.comb(1000, 100))


@pytest.mark.parametrize("n", [1, 3, 6])
def test_pass_at_k_equals_its_definition(n):
    for bits in itertools.product([False, True], repeat=n):
        for k in range(1, n + 1):
            assert pass_at_k(n, sum(bits), k) == pytest.approx(brute_pass_at_k(list(bits), k))


def test_maj_at_k_votes_and_ties():
    answers = ["3", "4", "4", "3", None, "3"]
    right = [True, False, False, True, False, True]
    assert maj_at_k(answers, right, 1) is True
    assert maj_at_k(answers, right, 3) is False  # "4" wins 2 to 1
    assert maj_at_k(answers, right, 4) is True  # 2-2 tie: the answer seen first ("3") wins
    assert maj_at_k(answers, right, 6) is True
    assert maj_at_k([None, None], [False, False], 2) is False
    assert maj_at_k([" 1 2", "12"], [True, True], 2) is True  # whitespace does not split a vote


def test_accuracy_avg_and_stderr():
    assert accuracy([True, False, None, True]) == pytest.approx(2 / 3)
    assert accuracy([None]) is None
    assert avg_at_n([True, False, False, False]) == 0.25
    assert stderr(0.5, 101) == pytest.approx(math.sqrt(0.25 / 100))
    assert stderr(None, 10) is None and stderr(0.5, 1) is None


def test_sample_metrics_over_problems():
    samples = [
        (["1", "1", "2", "2"], [True, True, False, False]),
        (["5", "6", "6", "7"], [False, False, False, False]),
        (["9", "9", "8", "9"], [True, True, False, True]),
    ]
    got = sample_metrics(samples)
    assert ks_for(4) == [1, 2, 4]
    assert got["n_samples"] == 4
    assert got["avg@4"] == pytest.approx((0.5 + 0 + 0.75) / 3)
    assert got["pass@1"] == pytest.approx(got["avg@4"])  # pass@1 is avg@n
    assert got["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + 0 + pass_at_k(4, 3, 2)) / 3)
    assert got["pass@4"] == pytest.approx(2 / 3)
    assert got["maj@4"] == pytest.approx(2 / 3)  # problem 1: tie, "1" first; problem 3: "9"
    assert got["maj@1"] == pytest.approx(2 / 3)


def test_breakdown_orders_groups():
    rows = [(3, True), (1, False), (3, False), (1, True), (1, True), (2, None)]
    assert breakdown(rows) == {
        "1": {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)},
        "2": {"n": 1, "correct": 0, "accuracy": None},
        "3": {"n": 2, "correct": 1, "accuracy": 0.5},
    }


def test_bad_input():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="2 answers but 1 verdicts"):
        maj_at_k(["1", "2"], [True], 1)
    with pytest.raises(ValueError, match="same positive number of samples"):
        sample_metrics([(["1"], [True]), (["1", "2"], [True, False])])
    with pytest.raises(ValueError, match="at least one sample"):
        avg_at_n([])
