"""Decontamination: text normalisation, overlap removal and in-train duplicates."""

from __future__ import annotations

import pytest

from genprm.data import decontaminate, normalize_text
from genprm.records import Problem, ProcessBenchSample


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  What   is\n$1+1$?  ", "what is 1+1"),
        (r"Find $\left( x \right)$.", "find ( x )"),
        (r"a\,b\!c\ d\;e\quad f", "a b c d e f"),
        (r"$\leftarrow$ and $\rightarrow$", r"\leftarrow and \rightarrow"),
        (r"rows $a \\ b$", r"rows a \\ b"),
        ("Compute X...", "compute x"),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def _p(pid: str, text: str) -> Problem:
    return Problem(id=pid, problem=text, answer="1")


def test_decontaminate_small() -> None:
    train = [_p("a", "What is $1+1$?"), _p("b", "Find x."), _p("c", "find  X"), _p("d", "Other"), _p("e", "Both")]
    evals = {
        "e1": [_p("t1", "what is 1 + 1"), _p("t2", "What is 1+1"), _p("t3", "both.")],
        "pb": [ProcessBenchSample(id="m-0", problem="BOTH", steps=["s"], final_answer_correct=True, label=-1)],
    }
    kept, report = decontaminate(train, evals)
    assert [p.id for p in kept] == ["b", "d"]
    assert report["removed"] == {"e1": 2, "pb": 1}
    assert report["removed_ids"] == {"e1": ["a", "e"], "pb": ["e"]}
    assert report["removed_total"] == 2
    assert (report["duplicates"], report["duplicate_ids"]) == (1, ["c"])
    assert (report["train"], report["kept"]) == (5, 2)


def test_math_train_vs_test_share_one_problem(math_train, math_test) -> None:
    kept, report = decontaminate(math_train, {"math_test": math_test})
    assert report["removed"] == {"math_test": 1}
    assert report["removed_total"] == 1
    (shared_id,) = report["removed_ids"]["math_test"]
    assert shared_id == "math/train/geometry/6032.json"  # = test/precalculus/24307.json up to a trailing newline
    shared = next(p for p in math_train if p.id == shared_id)
    test_texts = {normalize_text(p.problem) for p in math_test}
    assert normalize_text(shared.problem) in test_texts
    assert len(kept) == len(math_train) - 1 - report["duplicates"]


def test_math_train_vs_math500_and_processbench(math_train, math500, processbench) -> None:
    pb_math = [s for s in processbench if s.split == "math"]
    kept, report = decontaminate(math_train, {"math500": math500, "processbench_math": pb_math})
    # MATH-500 does not hold the one problem MATH test shares with train; ProcessBench math does.
    assert report["removed"] == {"math500": 0, "processbench_math": 1}
    assert report["removed_ids"]["processbench_math"] == ["math/train/geometry/6032.json"]
    # The one in-train duplicate differs only in spacing (algebra/2463 vs algebra/24377).
    assert report["duplicate_ids"] == ["math/train/algebra/24377.json"]
    removed_ids = report["removed_ids"]
    assert report["removed_total"] == len(set(removed_ids["math500"]) | set(removed_ids["processbench_math"]))
    assert len(kept) == report["train"] - report["removed_total"] - report["duplicates"]
