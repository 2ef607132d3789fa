"""Tests for the \\boxed{} extraction helper."""

from __future__ import annotations

import json

import pytest

from genprm.data import last_boxed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{5}$.", "5"),
        (r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{12}", "12"),
        (r"\boxed{1} and finally \fbox{3}", "3"),
        (r"set $\boxed{\{1, 2\}}$", r"\{1, 2\}"),
        (r"answer $\boxed 9$.", "9"),
        (r"$\boxed { 7 }$", "7"),
        (r"\boxed{\text{(A)}} ", r"\text{(A)}"),
        ("no box here", None),
        (r"empty \boxed{}", None),
        (r"unclosed \boxed{\frac{1}{2}", None),
        (r"\boxedx{3}", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


def test_last_boxed_matches_math_answer_field(data_dir) -> None:
    """The MATH files' added ``answer`` field is the last box of ``solution``: we must agree."""
    checked = 0
    for name in ("math/train.jsonl", "math/test.jsonl"):
        with open(data_dir / name, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row["answer"]:
                    assert last_boxed(row["solution"]) == row["answer"].strip(), row["unique_id"]
                    checked += 1
    assert checked == 12496
