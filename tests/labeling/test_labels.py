"""Pure label functions and dynamic K on hand-built values (no engine)."""

from __future__ import annotations

import pytest

from genprm.labeling.labels import (
    QUALITY_CRITERIA,
    apply_labels,
    difference_labels,
    hard_labels,
    quality_metrics,
    rpe_labels,
)
from genprm.labeling.montecarlo import check_k_thresholds, completion_request, dynamic_k, prefix_seed
from genprm.records import Solution, StepValues
from genprm.world import generate_problems, parse_problem, reference_steps

PAPER_K = [(0.1, 128), (0.9, 64), (1.0, 32)]


@pytest.mark.parametrize(
    ("mc_first", "k"),
    [(0.0, 128), (0.0999, 128), (0.1, 64), (0.5, 64), (0.8999, 64), (0.9, 32), (0.99, 32), (1.0, 32)],
)
def test_dynamic_k_boundaries(mc_first: float, k: int) -> None:
    assert dynamic_k(mc_first, PAPER_K) == k


def test_dynamic_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        dynamic_k(1.5, PAPER_K)
    for bad in ([], [(0.5, 8)], [(0.9, 8), (0.1, 4), (1.0, 2)], [(0.5, 0), (1.0, 4)]):
        with pytest.raises(ValueError):
            check_k_thresholds(bad)


def test_rpe_ratio_threshold_and_edges() -> None:
    # prev: 0.5, 0.4, 0.2, 0.0, 0.0
    assert rpe_labels(0.5, [0.4, 0.2, 0.0, 0.0, 0.0], 0.8) == [1, 0, 0, 0, 0]
    # a step that raises the value: ratio > 1
    assert rpe_labels(0.2, [0.6, 0.6], 0.8) == [1, 1]
    # exactly at the threshold counts (0.4 / 0.5 == 0.8)
    assert rpe_labels(0.5, [0.4], 0.8) == [1]
    assert rpe_labels(0.5, [0.39], 0.8) == [0]
    # epsilon 1.0 needs no decrease at all
    assert rpe_labels(0.5, [0.5, 0.49], 1.0) == [1, 0]
    # zero denominator (dead prefix, or mc_first 0): label 0, never a division error
    assert rpe_labels(0.0, [0.0, 0.0], 0.8) == [0, 0]
    assert rpe_labels(0.3, [0.0, 0.0], 0.0) == [1, 0]


def test_difference_and_hard_labels() -> None:
    assert difference_labels(0.5, [0.3, 0.25, 0.0, 0.0], -0.2) == [1, 1, 0, 0]
    assert difference_labels(0.5, [0.29], -0.2) == [0]
    # after a dead step 0 - 0 = 0 >= threshold, but the label is 0 (documented edge case)
    assert difference_labels(0.0, [0.0], -0.1) == [0]
    assert hard_labels([0.5, 0.01, 0.0, 0.0]) == [1, 1, 0, 0]


def test_apply_labels_is_pure_function_of_values() -> None:
    v = StepValues(solution_id="p/0", problem_id="p", mc_first=0.5, mc=[0.45, 0.1, 0.0], k=[64, 64, 64])
    (out,) = apply_labels([v], epsilon=0.8, difference_threshold=-0.3)
    # the last step drops 0.1 -> 0.0: a small absolute drop, so the difference label is 1
    assert out.labels == {"hard": [1, 1, 0], "rpe": [1, 0, 0], "difference": [1, 0, 1]}
    assert v.labels == {}  # input untouched
    (again,) = apply_labels([out], epsilon=0.5, difference_threshold=-0.5)
    assert again.labels["rpe"] == [1, 0, 0] and again.labels["difference"] == [1, 1, 1]


def test_completion_request_prefix_and_seed() -> None:
    req = completion_request("Compute 1 + 2.", ["1 + 2 = 3", "x"], 1, n=4, temperature=0.7, top_p=1.0,
                             max_tokens=16, seed=5)
    assert req.assistant_prefix == "Step 1: 1 + 2 = 3\nStep 2:"
    assert req.n == 4 and req.seed == 5 and req.messages[-1]["content"] == "Compute 1 + 2."
    assert prefix_seed(0, "a/1", 2) == prefix_seed(0, "a/1", 2)
    assert len({prefix_seed(0, "a/1", 2), prefix_seed(0, "a/1", 3), prefix_seed(1, "a/1", 2), prefix_seed(0, "a/2", 2)}) == 4
    assert 0 <= prefix_seed(9, "x", 1) < 2**31


def test_quality_metrics_against_checker() -> None:
    p = generate_problems(1, 3, )[0]
    good = reference_steps(parse_problem(p.problem))
    bad = list(good)
    bad[0] = bad[0].rsplit("=", 1)[0] + "= 999"  # arithmetic slip in step 1
    sols = [
        Solution(id="g", problem_id=p.id, problem=p.problem, steps=good, correct=True),
        Solution(id="b", problem_id=p.id, problem=p.problem, steps=bad, correct=False),
    ]
    n = len(good)
    perfect = [
        StepValues(solution_id="g", problem_id=p.id, mc_first=0.5, mc=[0.6] * (n - 1) + [1.0], k=[64] * (n - 1) + [0]),
        StepValues(solution_id="b", problem_id=p.id, mc_first=0.5, mc=[0.0] * n, k=[64] + [0] * (n - 1)),
    ]
    q = quality_metrics(perfect, sols)
    assert set(q) == {name for name, _, _ in QUALITY_CRITERIA}
    assert q["rpe@0.8"]["step_accuracy"] == 1.0 and q["rpe@0.8"]["f1"] == 1.0
    assert q["hard"]["first_error_accuracy"] == 1.0
    # a labeler that calls the good solution's first step wrong loses accuracy
    wrong = [perfect[0].model_copy(update={"mc": [0.1] + [0.1] * (n - 2) + [1.0]}), perfect[1]]
    q2 = quality_metrics(wrong, sols)
    assert q2["rpe@0.8"]["acc_correct"] == 0.0 and q2["rpe@0.8"]["f1"] == 0.0
    assert q2["rpe@0.8"]["step_accuracy"] < 1.0
