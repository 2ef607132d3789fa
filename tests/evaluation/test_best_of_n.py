"""Best-of-N selection, voting, pass@k and the scaling curves."""

from __future__ import annotations

import pytest

from genprm.evaluation.best_of_n import Candidate, best_of_n_curves, normalise_answer, select, sizes_up_to


def C(answer, correct, *rewards):
    return Candidate(answer, correct, rewards)


CANDS = [
    C("5", False, 0.2, 0.95),  # best last, worst min
    C("7", True, 0.8, 0.7),  # best min
    C("5", False, 0.3, 0.6),
    C("$7$", True, 0.6, 0.65),
    C("5", False, 0.1, 0.1),
]


def test_selection_methods():
    assert select(CANDS, "prm_last") is False
    assert select(CANDS, "prm_min") is True
    assert select(CANDS, "prm_avg") is True  # 0.75 beats 0.575
    assert select(CANDS, "majority") is False  # 5 x3 vs 7 x2
    assert select(CANDS, "prm_vote", vote_score="min") is True  # 7: 1.3 vs 5: 0.6
    assert select(CANDS, "pass_at_k") is True
    assert normalise_answer(" $\\dfrac{1}{2}$. ") == normalise_answer("\\frac{1}{2}")
    with pytest.raises(ValueError, match="unknown Best-of-N method"):
        select(CANDS, "prm_max")


def test_near_ties_go_to_the_answer_most_candidates_share():
    # an accepted wrong answer scores a hair above two accepted correct ones: noise, not evidence
    near = [C("9", False, 0.99999, 0.99998), C("8", True, 0.9999, 0.9999), C("8", True, 0.9998, 0.99985),
            C("6", False, 0.2, 0.1)]
    assert select(near, "prm_min") is False  # tie_margin 0: the highest score wins
    assert select(near, "prm_min", tie_margin=0.01) is True  # tied within 0.01: "8" has two votes
    # outside the margin the score decides, however many candidates share an answer
    far = [C("9", False, 0.99, 0.99), C("8", True, 0.9, 0.9), C("8", True, 0.9, 0.9)]
    assert select(far, "prm_min", tie_margin=0.01) is False
    # exact ties go to the shared answer even at margin 0; equal votes: the earlier candidate
    exact = [C("9", False, 1.0), C("8", True, 1.0), C("8", True, 1.0)]
    assert select(exact, "prm_last") is True
    assert select([C("9", False, 1.0), C("8", True, 1.0)], "prm_last") is False
    curves = best_of_n_curves([near] * 3, n_max=4, draws=2, seed=0, tie_margin=0.01)
    assert curves["prm_min"]["4"] == 100.0


def test_equivalence_merges_groups():
    cands = [C("0.5", True, 0.5), C("\\frac{1}{2}", True, 0.5), C("3", False, 0.5)]
    # tie (1 vs 1 vs 1) -> first group; with equivalence 0.5 and 1/2 merge into 2 votes
    assert select([cands[2], *cands[:2]], "majority") is False
    same = lambda a, b: {a, b} == {"0.5", "\\frac{1}{2}"}
    assert select([cands[2], *cands[:2]], "majority", equivalent=same) is True


def test_curves_shape_and_monotone_pass_at_k():
    problems = [CANDS, list(reversed(CANDS)), [C("1", False, 0.2), C("2", True, 0.9), C("1", False, 0.3), C("2", True, 0.8)]]
    curves = best_of_n_curves(problems, n_max=4, draws=30, seed=0)
    assert sizes_up_to(4) == [1, 2, 4] and sizes_up_to(6) == [1, 2, 4, 6]
    assert set(curves) == {"prm_last", "prm_min", "prm_avg", "majority", "prm_vote", "pass_at_k"}
    p = curves["pass_at_k"]
    assert list(p) == ["1", "2", "4"] and p["1"] <= p["2"] <= p["4"] == 100.0
    # at N=1 every method picks the single candidate
    assert len({round(curves[m]["1"], 9) for m in curves}) == 1
    assert curves == best_of_n_curves(problems, n_max=4, draws=30, seed=0)
    with pytest.raises(ValueError, match="fewer than n_max"):
        best_of_n_curves(problems, n_max=5)
