"""ProcessBench from the real files: counts, label semantics, ids."""

from __future__ import annotations

from collections import Counter

from genprm.data import PROCESSBENCH_SPLITS, load_processbench


def test_counts(processbench) -> None:
    sizes = Counter(s.split for s in processbench)
    assert sizes == {"gsm8k": 400, "math": 1000, "olympiadbench": 1000, "omnimath": 1000}
    errors = Counter(s.split for s in processbench if s.label != -1)
    assert errors == {"gsm8k": 207, "math": 594, "olympiadbench": 661, "omnimath": 759}
    correct_answer_with_error = Counter(s.split for s in processbench if s.label != -1 and s.final_answer_correct)
    assert correct_answer_with_error == {"gsm8k": 7, "math": 94, "olympiadbench": 161, "omnimath": 259}
    assert len({s.id for s in processbench}) == 3400
    assert tuple(dict.fromkeys(s.split for s in processbench)) == PROCESSBENCH_SPLITS


def test_math_688_label(processbench) -> None:
    sample = next(s for s in processbench if s.id == "math-688")
    assert sample.label == 0  # the Hub version (see SOURCES.md)


def test_data_root_single_file_and_limit(data_dir) -> None:
    from_root = load_processbench(data_dir, splits=["gsm8k"], limit=5)
    assert [s.id for s in from_root] == [f"gsm8k-{i}" for i in range(5)]
    one_file = load_processbench(data_dir / "processbench" / "gsm8k.json", limit=2)
    assert [(s.id, s.split) for s in one_file] == [("gsm8k-0", "gsm8k"), ("gsm8k-1", "gsm8k")]
