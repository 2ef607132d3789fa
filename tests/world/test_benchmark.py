import pytest

from genprm.records import Solution
from genprm.world.benchmark import build_benchmark, label_solutions

P1 = "Compute (3 + 4) * 2 - 5."
P2 = "Compute 9 - 4 + 2."


def _sol(pid, problem, i, steps):
    return Solution(id=f"{pid}/{i}", problem_id=pid, problem=problem, steps=steps, generator="policy")


SOLS = [
    _sol("p1", P1, 0, ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."]),
    _sol("p1", P1, 1, ["3 + 4 = 7", "7 * 2 = 15", "15 - 5 = 10. The answer is 10."]),
    _sol("p1", P1, 2, ["3 + 4 = 7", "7 * 2 = 15", "15 - 5 = 10. The answer is 10."]),  # duplicate
    _sol("p2", P2, 0, ["9 - 4 = 5", "5 + 2 = 7. The answer is 7."]),
    _sol("p2", P2, 1, ["9 - 3 = 6", "6 + 2 = 8. The answer is 8."]),
    _sol("p2", P2, 2, ["9 - 4 = 5", "5 + 3 = 8", "8 + 0 = 8. The answer is 7."]),
]


def test_labels_follow_the_checker_in_processbench_schema():
    samples = label_solutions(SOLS, split="world")
    assert [s.label for s in samples] == [-1, 1, 1, -1, 0, 1]
    assert [s.final_answer_correct for s in samples] == [True, False, False, True, False, True]
    assert [s.error_kind for s in samples] == [None, "arithmetic", "arithmetic", None, "copy", "copy"]
    row = samples[1].to_dict()
    assert {"id", "generator", "problem", "steps", "final_answer_correct", "label"} <= set(row)
    assert row["split"] == "world"


def test_balanced_one_per_problem_and_deterministic():
    samples, stats = build_benchmark(SOLS, 4, seed=0)
    assert stats["erroneous"] == 2 and stats["correct"] == 2
    assert stats["first_error_kind"] == {"arithmetic": 1, "copy": 1}
    assert sum(s.label >= 0 for s in samples) == 2
    wrong_problems = [s.id.split("/")[0] for s in samples if s.label >= 0]
    assert sorted(wrong_problems) == ["p1", "p2"]
    assert build_benchmark(SOLS, 4, seed=0)[0] == samples


def test_too_few_solutions_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot build a balanced benchmark of 6"):
        build_benchmark(SOLS, 6, seed=0)
