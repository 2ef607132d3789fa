"""Malformed rows raise RecordError naming the file, the 1-based line/element and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genprm.data import load_problems, load_processbench
from genprm.records import RecordError

GOOD_PROBLEM = {"unique_id": "test/algebra/1.json", "problem": "What is 1+1?", "answer": "2", "level": 1}


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _pb_row(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": f"math-{i}",
        "generator": "gen",
        "problem": "What is 1+1?",
        "steps": ["1+1 = 2.", "So the answer is 2."],
        "final_answer_correct": True,
        "label": -1,
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


@pytest.mark.parametrize(
    ("bad_row", "field", "message"),
    [
        ({"unique_id": "b", "answer": "2"}, "problem", "missing"),
        ({"unique_id": "b", "problem": 5, "answer": "2"}, "problem", "expected a string, got int"),
        ({"unique_id": "b", "problem": "  ", "answer": "2"}, "problem", "empty"),
        ({"unique_id": "b", "problem": "p"}, "answer", "no reference answer"),
        ({"unique_id": "b", "problem": "p", "answer": True}, "answer", "got bool"),
        ({"unique_id": "b", "problem": "p", "answer": [1]}, "answer", "got list"),
        ({"unique_id": "b", "problem": "p", "answer": float("nan")}, "answer", "not a finite number"),
        ({"unique_id": ["b"], "problem": "p", "answer": "1"}, "unique_id", "expected a non-empty string"),
        ({"unique_id": "b", "problem": "p", "answer": "1", "solution": 3}, "solution", "expected a string"),
        ({"unique_id": "test/algebra/1.json", "problem": "p", "answer": "1"}, "id", "duplicate id"),
        ("[1, 2]", "<row>", "expected an object, got list"),
        ('{"problem": ', "<json>", "invalid JSON"),
    ],
)
def test_problem_rows(tmp_path: Path, bad_row: Any, field: str, message: str) -> None:
    path = _jsonl(tmp_path / "test.jsonl", [GOOD_PROBLEM, "", bad_row])  # the blank line still counts
    with pytest.raises(RecordError) as info:
        load_problems("math500", path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert message in str(err)
    assert f"{path}, line 3, field '{field}'" in str(err)


def test_problem_rows_from_json_array_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    array = tmp_path / "test.json"
    array.write_text(json.dumps([GOOD_PROBLEM, {"unique_id": "x", "answer": "1"}]), encoding="utf-8")
    with pytest.raises(RecordError, match=r"test\.json, line 2, field 'problem'"):
        load_problems("math500", array)

    table = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD_PROBLEM, {**GOOD_PROBLEM, "unique_id": "y", "problem": ""}]), table)
    with pytest.raises(RecordError, match=r"test\.parquet, line 2, field 'problem'"):
        load_problems("math500", table)


def test_eval_set_without_answer_raises_but_math_skips(tmp_path: Path) -> None:
    rows = [GOOD_PROBLEM, {"unique_id": "u", "problem": "p", "solution": "no box"}]
    path = _jsonl(tmp_path / "test.jsonl", rows)
    with pytest.raises(RecordError, match="line 2, field 'answer'"):
        load_problems("minerva_math", path)
    assert [p.id for p in load_problems("math", path, split="test")] == ["math/test/algebra/1.json"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"problem": ...}, "problem", "missing"),
        ({"id": 7}, "id", "expected a non-empty string"),
        ({"steps": "one step"}, "steps", "expected a list of strings"),
        ({"steps": ["ok", 2]}, "steps", "expected a list of strings"),
        ({"steps": []}, "steps", "empty"),
        ({"label": 2}, "label", "out of range [-1, 1]"),
        ({"label": -2}, "label", "out of range"),
        ({"label": "1"}, "label", "expected an integer, got str"),
        ({"label": 1.0}, "label", "expected an integer, got float"),
        ({"label": True}, "label", "expected an integer, got bool"),
        ({"final_answer_correct": 1}, "final_answer_correct", "expected a bool, got int"),
        ({"final_answer_correct": False}, "final_answer_correct", "label -1"),
        ({"generator": 3}, "generator", "expected a string"),
        ({"id": "math-0"}, "id", "duplicate id"),
        ({"error_kind": "copy"}, "error_kind", "(label -1)"),
        ({"label": 0, "final_answer_correct": False, "error_kind": 3}, "error_kind", "expected a string"),
    ],
)
def test_processbench_rows(tmp_path: Path, changes: dict[str, Any], field: str, message: str) -> None:
    path = tmp_path / "math.json"
    path.write_text(json.dumps([_pb_row(0), _pb_row(1, label=0, final_answer_correct=False), _pb_row(2, **changes)]))
    with pytest.raises(RecordError) as info:
        load_processbench(tmp_path, splits=["math"])
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert message in str(err)


def test_processbench_valid_edge_cases(tmp_path: Path) -> None:
    rows = [
        _pb_row(0),
        _pb_row(1, label=1, final_answer_correct=True),  # a process error can still reach the right answer
        _pb_row(2, label=0, final_answer_correct=False, generator=..., error_kind="copy"),
    ]
    path = tmp_path / "gsm8k.json"
    path.write_text(json.dumps(rows))
    samples = load_processbench(path)
    assert [(s.id, s.label, s.final_answer_correct, s.split, s.generator) for s in samples] == [
        ("math-0", -1, True, "gsm8k", "gen"),
        ("math-1", 1, True, "gsm8k", "gen"),
        ("math-2", 0, False, "gsm8k", ""),
    ]
    assert [s.error_kind for s in samples] == [None, None, "copy"]


def test_processbench_file_level_errors(tmp_path: Path) -> None:
    (tmp_path / "math.json").write_text('{"not": "an array"}')
    with pytest.raises(RecordError, match="expected a JSON array"):
        load_processbench(tmp_path, splits=["math"])
    (tmp_path / "math.json").write_text("[{")
    with pytest.raises(RecordError, match="invalid JSON"):
        load_processbench(tmp_path, splits=["math"])
    with pytest.raises(FileNotFoundError, match="omnimath"):
        load_processbench(tmp_path, splits=["omnimath"])
    with pytest.raises(ValueError, match="unknown ProcessBench split"):
        load_processbench(tmp_path, splits=["mmlu"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_processbench(tmp_path / "missing")
