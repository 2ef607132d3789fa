import json
import os

import pytest

from genprm.records import (
    ProcessBenchSample,
    Problem,
    RecordError,
    Solution,
    StepValues,
    Verdict,
    atomic_write,
    from_dataset,
    read_records,
    replace_dir,
    to_dataset,
    write_records,
)


def _problems():
    return [
        Problem(id="p1", problem="Compute 1 + 2.", answer="3", source="world", metadata={"n_ops": 1}),
        Problem(id="p2", problem="What is $\\frac{1}{2}$?", answer="\\frac{1}{2}", source="x"),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    assert write_records(path, _problems()) == 2
    assert read_records(path, Problem) == _problems()


def test_jsonl_is_byte_stable(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records(a, _problems())
    write_records(b, [Problem(**p.to_dict()) for p in _problems()])
    assert a.read_bytes() == b.read_bytes()
    assert "\\frac" in a.read_text()  # not escaped twice, unicode kept


def test_malformed_row_names_file_line_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [{"id": "a", "problem": "x"}, {"id": "b", "problem": None}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(RecordError) as err:
        read_records(path, Problem)
    assert err.value.line == 2 and err.value.field == "problem"
    assert str(path) in str(err.value) and "line 2" in str(err.value)


def test_invalid_json_and_unknown_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "problem": "x"}\n{oops\n')
    with pytest.raises(RecordError, match="line 2, field '<json>'"):
        read_records(path, Problem)
    path.write_text('{"id": "a", "problem": "x", "answr": "1"}\n')
    with pytest.raises(RecordError, match="field 'answr': unknown field"):
        read_records(path, Problem)


def test_processbench_label_range():
    ok = ProcessBenchSample(id="a", problem="p", steps=["s1", "s2"], final_answer_correct=False, label=1)
    assert ok.label == 1
    with pytest.raises(ValueError, match="out of range"):
        ProcessBenchSample(id="a", problem="p", steps=["s1"], final_answer_correct=False, label=1)
    with pytest.raises(ValueError):
        ProcessBenchSample(id="a", problem="p", steps=["s1"], final_answer_correct=True, label=-2)


def test_step_values_validation():
    StepValues(solution_id="s", problem_id="p", mc_first=0.5, mc=[0.5, 0.0], k=[8, 0])
    with pytest.raises(ValueError, match=r"mc\[1\]"):
        StepValues(solution_id="s", problem_id="p", mc_first=0.5, mc=[0.5, 1.5], k=[8, 8])
    with pytest.raises(ValueError, match="k has"):
        StepValues(solution_id="s", problem_id="p", mc_first=0.5, mc=[0.5], k=[8, 8])


def test_verdict_reward_bounds():
    assert Verdict(step=0, correct=True, reward=0.5).reward == 0.5
    with pytest.raises(ValueError):
        Verdict(step=0, correct=True, reward=1.2)
    with pytest.raises(ValueError):
        Verdict(step=0, correct=True, reward=0.9, forced=1.5)


def test_verdict_without_judgement_has_no_reward():
    """A missing judgement is never a score: no 0.5 stand-in, no correct flag."""
    v = Verdict(step=0, correct=None, reward=None)
    assert v.reward is None and Verdict(**v.to_dict()) == v
    with pytest.raises(ValueError, match="together"):
        Verdict(step=0, correct=None, reward=0.5)
    with pytest.raises(ValueError, match="together"):
        Verdict(step=0, correct=True, reward=None)


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "out.jsonl"
    write_records(path, _problems())
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_write(path) as fh:
            fh.write("half")
            raise RuntimeError("crash")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left


def test_replace_dir(tmp_path):
    target = tmp_path / "d"
    with replace_dir(target) as d:
        (d / "stale.txt").write_text("1")
    with replace_dir(target) as d:
        (d / "new.txt").write_text("2")
    assert sorted(os.listdir(target)) == ["new.txt"]
    with pytest.raises(RuntimeError):
        with replace_dir(target) as d:
            (d / "partial.txt").write_text("3")
            raise RuntimeError("crash")
    assert sorted(os.listdir(target)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_datasets_interop():
    sols = [
        Solution(id="s1", problem_id="p1", problem="q", steps=["a", "b"], final_answer="3", correct=True,
                 metadata={"k": [1, 2]}),
        Solution(id="s2", problem_id="p1", problem="q", steps=["c"], correct=False),
    ]
    ds = to_dataset(sols)
    assert ds.num_rows == 2 and ds[0]["steps"] == ["a", "b"]
    assert from_dataset(ds, Solution) == sols
