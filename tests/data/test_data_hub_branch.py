"""The Hub branch: rows from ``datasets`` go through the same field mapping as local files.

The Hub is not reachable in tests, so Hub-shaped data is written to ``tmp_path`` with
``save_to_disk`` or as a parquet snapshot in the Hub's layout, and read back through
``datasets.load_from_disk`` / ``datasets.load_dataset``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from genprm.data import load_problems, load_processbench  # noqa: E402
from genprm.data.sources import hub_rows, is_local_source  # noqa: E402
from genprm.records import RecordError  # noqa: E402


def test_is_local_source() -> None:
    assert not is_local_source("Qwen/ProcessBench")
    assert not is_local_source("gsm8k")
    for source in ("./x", "/abs/x", "~/x", "x/", "a/b/c", "x.jsonl", "x.parquet", Path("Qwen/ProcessBench")):
        assert is_local_source(source), source


def test_save_to_disk_aime_in_hub_schema(tmp_path: Path) -> None:
    # Maxwell-Jia/AIME_2024 names its fields ID/Problem/Solution/Answer and has one split, "train".
    rows = [
        {"ID": "2024-I-1", "Problem": "Find x.", "Solution": r"so $\boxed{204}$", "Answer": 204},
        {"ID": "2024-I-2", "Problem": "Find y.", "Solution": "...", "Answer": 25},
    ]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "aime"))
    problems = load_problems("aime24", tmp_path / "aime")
    assert [(p.id, p.problem, p.answer, p.solution) for p in problems] == [
        ("aime24/2024-I-1", "Find x.", "204", r"so $\boxed{204}$"),
        ("aime24/2024-I-2", "Find y.", "25", "..."),
    ]
    assert all(p.source == "aime24" and p.metadata == {"split": "test"} for p in problems)


def test_parquet_snapshot_minerva_and_amc(tmp_path: Path) -> None:
    # math-ai/minervamath: question/answer, split "test", files in the Hub layout.
    minerva = tmp_path / "minerva"
    (minerva / "data").mkdir(parents=True)
    rows = [{"question": "Q0", "answer": "1.6"}, {"question": "Q1", "answer": "4"}]
    datasets.Dataset.from_list(rows).to_parquet(str(minerva / "data" / "test-00000-of-00001.parquet"))
    problems = load_problems("minerva_math", minerva)
    assert [(p.id, p.problem, p.answer) for p in problems] == [
        ("minerva_math/0", "Q0", "1.6"),
        ("minerva_math/1", "Q1", "4"),
    ]

    amc = tmp_path / "amc"
    amc.mkdir()
    rows = [{"id": 0, "problem": "P", "answer": 27.0}, {"id": 1, "problem": "R", "answer": 2.5}]
    datasets.Dataset.from_list(rows).to_parquet(str(amc / "test-00000-of-00001.parquet"))
    assert [(p.id, p.answer) for p in load_problems("amc23", amc)] == [("amc23/0", "27"), ("amc23/1", "2.5")]


def test_hub_rows_is_load_dataset(tmp_path: Path) -> None:
    # hub_rows hands its source straight to datasets.load_dataset: a local snapshot folder works the same.
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list([{"problem": "P", "answer": "1"}]).to_parquet(str(tmp_path / "data" / "test-0.parquet"))
    rows = list(hub_rows(str(tmp_path), "test"))
    assert [(r.line, r.data) for r in rows] == [(1, {"problem": "P", "answer": "1"})]
    assert rows[0].origin.endswith(":test")


def test_save_to_disk_math_without_answer_field(tmp_path: Path) -> None:
    # EleutherAI/hendrycks_math rows have no answer: it comes from the last box; no id: the row index.
    rows = [
        {"problem": "A", "level": "Level 1", "type": "Algebra", "solution": r"$\boxed{3}$"},
        {"problem": "B", "level": "Level 2", "type": "Algebra", "solution": "no box"},
        {"problem": "C", "level": "Level 3", "type": "Algebra", "solution": r"$\fbox{\frac12}$"},
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "m"))
    problems = load_problems("math", tmp_path / "m", split="test")
    assert [(p.id, p.answer, p.metadata["level"]) for p in problems] == [
        ("math/test/0", "3", "Level 1"),
        ("math/test/2", r"\frac12", "Level 3"),
    ]


def test_save_to_disk_processbench(tmp_path: Path) -> None:
    def row(i: int, split: str, label: int) -> dict:
        return {
            "id": f"{split}-{i}",
            "generator": "g",
            "problem": "P",
            "steps": ["a", "b"],
            "final_answer_correct": label == -1,
            "label": label,
        }

    names = ("gsm8k", "math", "olympiadbench", "omnimath")
    splits = {s: datasets.Dataset.from_list([row(0, s, -1), row(1, s, 1)]) for s in names}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "pb"))
    samples = load_processbench(tmp_path / "pb", splits=["math", "omnimath"], limit=1)
    assert [(s.id, s.split, s.label) for s in samples] == [("math-0", "math", -1), ("omnimath-0", "omnimath", -1)]
    bad = {"math": datasets.Dataset.from_list([row(0, "math", -1), row(1, "math", 5)])}
    datasets.DatasetDict(bad).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(RecordError, match=r"bad:math, line 2, field 'label'"):
        load_processbench(tmp_path / "bad", splits=["math"])
