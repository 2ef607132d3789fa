"""The adaptive stopping rule: exactness of the exact bound, and the confidence bounds."""

from __future__ import annotations

import itertools

import pytest

from genprm.labeling.adaptive import (
    exact_decision,
    predictive_one,
    settled_decision,
    wilson_interval,
    z_value,
)
from genprm.labeling.labels import TOLERANCE


def _final(c: int, k: int, threshold: float) -> int:
    return int(c / k >= threshold - TOLERANCE)


@pytest.mark.parametrize("k", [1, 4, 8, 13])
def test_exact_decision_is_exact(k: int) -> None:
    """Settled iff every possible rest of the budget gives the same fixed-K label."""
    thresholds = [0.0, 0.05, 0.25, 0.4, 0.5, 0.64, 0.8, 1.0, 1.2]
    for n, threshold in itertools.product(range(k + 1), thresholds):
        for c in range(n + 1):
            finals = {_final(c + x, k, threshold) for x in range(k - n + 1)}
            d = exact_decision(c, n, k, threshold)
            if len(finals) == 1:
                assert d == finals.pop(), (c, n, k, threshold)
            else:
                assert d is None, (c, n, k, threshold)


def test_exact_decision_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        exact_decision(3, 2, 8, 0.5)
    with pytest.raises(ValueError):
        exact_decision(0, 9, 8, 0.5)


def test_wilson_interval() -> None:
    z = z_value(0.95)
    assert z == pytest.approx(1.959964, abs=1e-5)
    lo, hi = wilson_interval(0, 10, z)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson_interval(5, 10, z)
    assert lo < 0.5 < hi and lo == pytest.approx(0.2366, abs=1e-3)
    assert wilson_interval(0, 0, z) == (0.0, 1.0)


def test_predictive_probability_edges_and_monotone() -> None:
    assert predictive_one(4, 8, 8, 0.5) == 1.0
    assert predictive_one(0, 6, 8, 0.5) == 0.0  # needs 4 more, only 2 to come
    probs = [predictive_one(c, 16, 64, 0.5) for c in range(17)]
    assert all(a <= b for a, b in zip(probs, probs[1:]))
    assert probs[0] < 0.01 and probs[-1] > 0.99


@pytest.mark.parametrize("bound", ["wilson", "predictive"])
def test_settled_decision_matches_stored_value(bound: str) -> None:
    """Whatever settles a step, its label equals the label of the stored value c / n."""
    for k, n in [(32, 8), (64, 16), (128, 24), (64, 64)]:
        for c in range(n + 1):
            for threshold in (0.05, 0.3, 0.5, 0.72, 0.9):
                d = settled_decision(c, n, k, threshold, 0.99, bound)
                if d is not None:
                    assert d == int(c / n >= threshold - TOLERANCE)
    # far from the threshold a chunk of 8 settles; at it nothing does
    assert settled_decision(8, 8, 64, 0.2, 0.99, bound) == 1
    assert settled_decision(4, 8, 64, 0.5, 0.99, bound) is None
    # without a confidence bound only the exact bound (or the spent budget) settles
    assert settled_decision(8, 8, 64, 0.2, None, bound) is None
    assert settled_decision(13, 16, 16, 0.8, None, bound) == 1
    with pytest.raises(ValueError):
        settled_decision(1, 8, 64, 0.5, 0.99, "nope")


def test_replay_exact_only_reproduces_fixed_labels_on_same_samples() -> None:
    """With the exact bound only, the replayed labels equal the fixed run's where denominators agree."""
    from genprm.labeling.adaptive import replay_adaptive
    from genprm.labeling.labels import rpe_labels
    from genprm.records import Solution

    k_thr = [(1.0, 16)]
    sols = [
        Solution(id="a", problem_id="p", problem="q", steps=["s1", "s2", "s3"], correct=True, metadata={"mc_first": 0.5}),
        Solution(id="b", problem_id="p", problem="q", steps=["s1", "s2"], correct=False, metadata={"mc_first": 0.5}),
    ]
    outcomes = {("a", 1): [True] * 12 + [False] * 4, ("a", 2): [True, False] * 8, ("b", 1): [False] * 16}
    values, used = replay_adaptive(outcomes, sols, k_thresholds=k_thr, chunk=4, confidence=None, epsilon=0.8)
    a, b = values
    # a, step 1: 4/4 after one chunk: c/K = 4/16 < 0.4, not settled; 8/8 -> 8/16 >= 0.4: settled at 8
    # a, step 2: tau = 0.8 * 1.0; after 8 draws 4 correct: (4 + 8) / 16 < 0.8, settled at 0
    assert a.k == [8, 8, 0] and a.mc == [1.0, 0.5, 1.0]
    # b, step 1: all wrong; (0 + 16 - n) / 16 < 0.4 first at n = 12
    assert b.k == [12, 0] and b.mc == [0.0, 0.0]
    assert used == 8 + 8 + 12
    assert rpe_labels(b.mc_first, b.mc) == [0, 0] and rpe_labels(a.mc_first, a.mc)[0] == 1
