"""The quality gate: a clean set passes, each planted defect fails with a readable report."""

from __future__ import annotations

import copy

import pytest

from genprm.labeling.gate import GateError, run_gate
from genprm.labeling.labels import apply_labels
from genprm.records import Solution, StepValues


def _clean() -> tuple[list[dict], list[dict]]:
    sols, vals = [], []
    for p in range(3):
        for j, ok in enumerate((True, False)):
            sid = f"p{p}/{j}"
            steps = [f"{p} + {j} = {p + j}", f"step {j} b", "The answer is 1."]
            sols.append(Solution(id=sid, problem_id=f"p{p}", problem="q", steps=steps, correct=ok).to_dict())
            mc = [0.5, 0.5, 1.0] if ok else [0.5, 0.0, 0.0]
            k = [64, 0, 0] if not ok else [64, 64, 0]
            vals.append(StepValues(solution_id=sid, problem_id=f"p{p}", mc_first=0.5, mc=mc, k=k))
    return [v.to_dict() for v in apply_labels(vals)], sols


def _plant(defect: str):
    vals, sols = _clean()
    if defect == "mc_out_of_range":
        vals[0]["mc"][0] = 1.5
    elif defect == "label_not_binary":
        vals[1]["labels"]["rpe"][0] = 2
    elif defect == "nonzero_after_zero":
        vals[1]["mc"][2] = 0.25
    elif defect == "one_outcome_only":
        sols[1]["correct"] = True
    elif defect == "duplicate_solution":
        dup = copy.deepcopy(sols[0])
        dup["id"] = "p0/9"
        sols.append(dup)
        v = copy.deepcopy(vals[0])
        v["solution_id"] = "p0/9"
        vals.append(v)
    elif defect == "label_balance":
        for v in vals:
            v["labels"]["rpe"] = [1] * len(v["mc"])
    elif defect == "missing_label":
        del vals[2]["labels"]["difference"]
    return vals, sols


EXPECTED = {
    "mc_out_of_range": "expect_column_values_to_be_between",
    "label_not_binary": "expect_column_values_to_be_in_set",
    "nonzero_after_zero": "zeros_after_first_zero",
    "one_outcome_only": "problem_has_both",
    "duplicate_solution": "dup_key",
    "label_balance": "expect_column_mean_to_be_between",
    "missing_label": "lengths_match",
}


@pytest.mark.slow
def test_clean_set_passes() -> None:
    vals, sols = _clean()
    summary = run_gate(vals, sols, min_positive_share=0.2, max_positive_share=0.9)
    assert summary["failed"] == 0 and summary["steps"] == 18 and 0.2 <= summary["positive_share"] <= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(EXPECTED))
def test_planted_defect_fails(defect: str) -> None:
    vals, sols = _plant(defect)
    with pytest.raises(GateError) as info:
        run_gate(vals, sols, min_positive_share=0.2, max_positive_share=0.9)
    msg = str(info.value)
    assert EXPECTED[defect] in msg, msg
    assert msg.startswith("quality gate failed:")
    if defect in ("mc_out_of_range", "nonzero_after_zero", "one_outcome_only"):
        assert "solution_id=" in msg  # offending rows are named
