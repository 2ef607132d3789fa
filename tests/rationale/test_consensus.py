"""Consensus rule (closed after the first 0 on both sides) and the retention report."""

from __future__ import annotations

import pytest

from genprm.rationale.consensus import agrees, close_after_first_zero, filter_consensus
from genprm.rationale.parsing import ParsedReview
from genprm.records import Solution, StepValues


@pytest.mark.parametrize(
    "verdicts, labels, kept",
    [
        ([1, 1, 1], [1, 1, 1], True),
        ([1, 1, 0, 1], [1, 1, 0, 0], True),  # a Yes after the teacher's first No does not count
        ([1, 1, 0, 0], [1, 1, 0, 1], True),  # nor a 1 label after the first 0 label
        ([0, 1, 1], [0, 0, 0], True),
        ([1, 0, 0], [1, 1, 0], False),  # teacher's error too early
        ([1, 1, 0], [1, 0, 0], False),  # too late
        ([1, 1, 1], [1, 1, 0], False),  # missed
        ([1, 1, 0], [1, 1, 1], False),  # false alarm
    ],
)
def test_agreement_rule(verdicts, labels, kept):
    assert agrees([bool(v) for v in verdicts], labels) is kept


def test_close_after_first_zero():
    assert close_after_first_zero([1, 0, 1, 1]) == [1, 0, 0, 0]
    assert close_after_first_zero([True, True]) == [1, 1]
    with pytest.raises(ValueError):
        agrees([True], [1, 1])


def _sol(i: int, gen: str, n: int = 3) -> Solution:
    return Solution(id=f"p{i}/s", problem_id=f"src{i % 2}/p{i}", problem="Compute 1 + 1.", steps=["x"] * n,
                    generator=gen)


def test_filter_reports_retention_per_generator_and_source():
    sols = [_sol(i, "a" if i < 4 else "b") for i in range(6)]
    labels = [[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]]
    values = {s.id: StepValues(solution_id=s.id, problem_id=s.problem_id, mc_first=0.5, mc=[0.5] * 3, k=[1] * 3,
                               labels={"rpe": lab}) for s, lab in zip(sols, labels)}
    parsed = {
        "p0/s": ParsedReview((True, True, True), -1),      # agree
        "p1/s": ParsedReview((True, False, True), 1),      # agree (after first error ignored)
        "p2/s": ParsedReview((True, True, True), -1),      # disagree
        # p3 unparsed (dropped by parsing)
        "p4/s": ParsedReview((True, True, True), -1),      # agree
        "p5/s": ParsedReview((False, False, False), 0),    # disagree
    }
    result = filter_consensus(sols, values, parsed)
    assert result.kept == ["p0/s", "p1/s", "p4/s"]
    r = result.report
    assert (r["reviewed"], r["kept"], r["unparsed"], r["disagree"], r["retention"]) == (6, 3, 1, 2, 0.5)
    assert r["by_generator"] == {"a": {"reviewed": 4, "kept": 2, "retention": 0.5},
                                 "b": {"reviewed": 2, "kept": 1, "retention": 0.5}}
    assert r["by_source"]["src0"] == {"reviewed": 3, "kept": 2, "retention": 0.6667}
    with pytest.raises(KeyError):
        filter_consensus(sols, values, parsed, label="hard")
