"""Fixtures for the data-loader tests: the shared real data, each file loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from genprm.data import load_problems, load_processbench
from genprm.records import Problem, ProcessBenchSample

DATA_DIR = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data not found at {DATA_DIR} (expected beside the repository as shared/data)")
    return DATA_DIR


@pytest.fixture(scope="session")
def math_train(data_dir: Path) -> list[Problem]:
    return load_problems("math", data_dir / "math", split="train")


@pytest.fixture(scope="session")
def math_test(data_dir: Path) -> list[Problem]:
    return load_problems("math", data_dir, split="test")


@pytest.fixture(scope="session")
def math500(data_dir: Path) -> list[Problem]:
    return load_problems("math500", data_dir / "math500")


@pytest.fixture(scope="session")
def processbench(data_dir: Path) -> list[ProcessBenchSample]:
    return load_processbench(data_dir / "processbench")
