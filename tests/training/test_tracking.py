"""The MLflow adapter against a real temporary sqlite store."""

from __future__ import annotations

import json

from genprm import tracking


def test_default_uri_and_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.artifact_root(tmp_path) == (tmp_path.resolve() / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert tracking.tracking_uri(tmp_path) == "http://example:5000"
    assert tracking.artifact_root(tmp_path) is None


def test_flatten():
    assert tracking.flatten({"a": 1, "lora": {"r": 8, "x": {"y": None}}}) == {"a": 1, "lora.r": 8, "lora.x.y": None}


def test_run_logs_params_series_metrics_and_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    report = tmp_path / "train.json"
    report.write_text(json.dumps({"steps": 3}))
    with tracking.start_run("t", experiment="exp", uri=uri, artifacts=(tmp_path / "mlruns").as_uri(),
                            tags={"stage": "train"}) as run:
        tracking.log_params({"mode": "lora", "lora": {"r": 8}})
        tracking.log_series("train_loss", [(1, 3.0), (5, 2.0), (10, 1.5)])
        tracking.log_metrics({"seconds": 1.25, "mode": "lora", "ok": True, "nested": {"n": 2}})
        tracking.log_artifact(report)
    client = MlflowClient(uri)
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"mode": "lora", "lora.r": "8"}
    assert got.data.tags["stage"] == "train"
    assert got.data.metrics == {"seconds": 1.25, "nested.n": 2.0, "train_loss": 1.5}
    hist = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [(1, 3.0), (5, 2.0), (10, 1.5)]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["train.json"]
    assert (tmp_path / "mlruns" / "exp").is_dir()
