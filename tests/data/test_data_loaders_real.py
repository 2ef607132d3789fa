"""Loaders against the real files in shared/data: counts, answers, ids."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from genprm.data import LOADERS, UnknownDatasetError, get_spec, load_problems
from genprm.records import Problem


def _assert_ids_unique(problems: list[Problem]) -> None:
    counts = Counter(p.id for p in problems)
    assert [i for i, n in counts.items() if n > 1] == []


def test_math_train(math_train: list[Problem]) -> None:
    # 7500 rows; the two with an empty \boxed{} have no answer and are skipped. The two whose
    # stored answer is null have an unbraced "\boxed 2" / "\boxed 9", which we do read.
    assert len(math_train) == 7498
    _assert_ids_unique(math_train)
    by_id = {p.id: p for p in math_train}
    assert by_id["math/train/algebra/0.json"].answer == "0"
    assert by_id["math/train/algebra/24014.json"].answer == "2"
    assert by_id["math/train/algebra/25040.json"].answer == "9"
    assert "math/train/number_theory/7115.json" not in by_id
    assert "math/train/number_theory/7117.json" not in by_id
    first = math_train[0]
    assert first.source == "math"
    assert first.metadata == {"split": "train", "level": "Level 5", "type": "Algebra"}
    assert first.solution and first.solution.endswith(r"\boxed{0}$.")


def test_math_train_skips_unanswered_with_warning(data_dir, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="genprm.data.loaders"):
        problems = load_problems("math", data_dir / "math" / "train.jsonl")
    assert len(problems) == 7498
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 2 row(s)" in warnings[0]


def test_math_test(math_test: list[Problem]) -> None:
    assert len(math_test) == 5000
    _assert_ids_unique(math_test)
    assert math_test[0].id == "math/test/algebra/1.json"
    assert math_test[0].answer == "2"
    assert all(p.answer for p in math_test)


def test_math500(math500: list[Problem], math_test: list[Problem]) -> None:
    assert len(math500) == 500
    _assert_ids_unique(math500)
    assert math500[0].id == "math500/test/precalculus/807.json"
    assert math500[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert math500[0].metadata == {"split": "test", "level": 2, "subject": "Precalculus"}
    # MATH-500 is a subset of the MATH test split with the same answers.
    test_answers = {p.id.removeprefix("math/"): p.answer for p in math_test}
    assert all(test_answers[p.id.removeprefix("math500/")] == p.answer for p in math500)


def test_aime24(data_dir) -> None:
    problems = load_problems("aime24", data_dir)
    assert len(problems) == 30
    _assert_ids_unique(problems)
    assert problems[0].id == "aime24/60"
    assert problems[0].answer == "204"
    assert problems[7].answer == "025"  # answers stay the strings of the source
    assert all(isinstance(p.answer, str) for p in problems)
    assert problems[0].metadata["url"].startswith("https://artofproblemsolving.com/")


def test_amc23(data_dir) -> None:
    problems = load_problems("amc23", data_dir / "amc23")
    assert len(problems) == 40
    _assert_ids_unique(problems)
    assert problems[0].id == "amc23/0"
    assert problems[0].answer == "27"  # 27.0 in the file
    assert problems[15].answer == "-1"  # -1.0 in the file
    assert all("." not in p.answer for p in problems)
    assert problems[0].solution is None


def test_minerva_math(data_dir) -> None:
    problems = load_problems("minerva_math", data_dir / "minerva_math")
    assert len(problems) == 272
    _assert_ids_unique(problems)
    assert problems[0].id == "minerva_math/0"
    assert problems[0].answer == "1.6"
    assert problems[1].answer == "4.5e33"
    assert problems[0].metadata["type"] == "Introduction to Astronomy (8.282J Spring 2006)"


def test_limit_and_split_defaults(data_dir) -> None:
    assert [p.id for p in load_problems("aime24", data_dir, limit=3)] == ["aime24/60", "aime24/61", "aime24/62"]
    assert load_problems("math500", data_dir, limit=0) == []
    with pytest.raises(ValueError, match="no split 'train'"):
        load_problems("math500", data_dir, split="train")


def test_unknown_name_lists_known_and_closest() -> None:
    with pytest.raises(UnknownDatasetError) as info:
        load_problems("math-500")
    message = str(info.value)
    assert "unknown dataset 'math-500'" in message
    for name in LOADERS:
        assert name in message
    assert "did you mean 'math500'?" in message
    with pytest.raises(UnknownDatasetError, match="load_processbench"):
        get_spec("processbench")


def test_missing_local_path_is_not_sent_to_hub(tmp_path) -> None:
    sources = ("./nope/", str(tmp_path / "nope"), "../nope", "nope/deeper/test.jsonl", "x.jsonl", tmp_path / "gone")
    for source in sources:
        with pytest.raises(FileNotFoundError, match="no such file or folder"):
            load_problems("math500", source)


def test_folder_without_data(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no data found"):
        load_problems("math500", tmp_path)
