"""The Prefect pipeline flow, run for real against a temporary Prefect server and a temp DVC repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_summary_markdown_flattens_metrics(repo, load_script):
    mod = load_script(repo / "flows" / "pipeline.py")
    md = mod.summary_markdown({"prepare": {"metrics/prepare.json": {"train": {"kept": 5}, "ids": [1]},
                                           "timings/prepare.json": {"seconds": 1.5}}})
    assert "| metrics/prepare.json:train.kept | 5 |" in md
    assert "| timings/prepare.json:seconds | 1.5 |" in md and "ids" not in md and "MLflow" not in md
    assert "MLflow parent run: `abc123`" in mod.summary_markdown({}, mlflow_run_id="abc123")


@pytest.mark.slow
def test_pipeline_flow_runs_stages_and_publishes_summary(repo, tmp_path, prefect_harness, monkeypatch, load_script):
    monkeypatch.setenv("GENPRM_TRACKING", "1")  # the stage logs its MLflow run (stages/lineage.py)
    monkeypatch.setenv("GENPRM_TRACKING_STRICT", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GENPRM_MLFLOW_PARENT_RUN_ID", raising=False)
    for name in ("stages", "src", "params.yaml", "dvc.yaml", "flows"):
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=dict(os.environ, DVC_NO_ANALYTICS="1"))
    mod = load_script(repo / "flows" / "pipeline.py")
    with pytest.raises(ValueError, match="unknown stages"):
        mod.pipeline(repo=str(tmp_path), stages=["nope"])
    metrics = mod.pipeline(repo=str(tmp_path), stages=["prepare"])
    assert metrics["prepare"]["metrics/prepare.json"]["eval"]["world_test"] == 300
    assert "seconds" not in metrics["prepare"]["metrics/prepare.json"]
    assert metrics["prepare"]["timings/prepare.json"]["seconds"] >= 0  # durations: untracked timings/prepare.json
    assert (tmp_path / "data/prepared/train.jsonl").exists()

    # one MLflow parent run in the repository's store; the stage's run is its child
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("genprm").experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("genprm.kind") == "pipeline"]
    assert parent.info.run_name == "pipeline" and parent.info.status == "FINISHED"
    assert parent.data.tags["stages"] == "prepare" and parent.data.tags["prefect.flow_run_id"]
    [child] = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert child.data.tags["genprm.stage"] == "prepare"
    assert "GENPRM_MLFLOW_PARENT_RUN_ID" not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ

    from prefect.artifacts import Artifact

    artifact = Artifact.get("genprm-summary")
    assert artifact is not None and "world_test" in artifact.data
    assert f"MLflow parent run: `{parent.info.run_id}`" in artifact.data

    # without tracking: no new MLflow run (the stage is up to date, DVC skips it)
    mod.pipeline(repo=str(tmp_path), stages=["prepare"], track=False)
    assert len(client.search_runs([parent.info.experiment_id])) == len(runs)
