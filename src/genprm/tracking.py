"""The project's MLflow adapter: where runs go, and logging params, metrics and artifacts.

Default store: ``sqlite:///<repo>/mlflow.db`` with artifacts under ``<repo>/mlruns/`` (the
repository root is the working directory, where stages run). ``MLFLOW_TRACKING_URI``
overrides the store (e.g. a tracking server), and then the server decides artifact places.

Use::

    from genprm import tracking

    with tracking.start_run("train", experiment="genprm", tags={"stage": "train"}):
        tracking.log_params(cfg.model_dump())              # nested dicts are flattened: lora.r
        tracking.log_series("train_loss", [(1, 2.3), (10, 1.9)])
        tracking.log_metrics({"seconds": 41.0})
        tracking.log_artifact("metrics/train.json")

See runs with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``. Later parts (model
registry, serving) go through :func:`configure` / :func:`start_run` too, so every part shares
one store. mlflow is imported only when a function is called.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_EXPERIMENT",
    "tracking_uri",
    "artifact_root",
    "configure",
    "start_run",
    "flatten",
    "log_params",
    "log_metrics",
    "log_series",
    "log_artifact",
]

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "genprm"
_MAX_PARAM = 6000  # MLflow's limit on a param value's length


def tracking_uri(root: str | os.PathLike | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<root>/mlflow.db`` (root: the working directory)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = Path(root or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(root: str | os.PathLike | None = None) -> str | None:
    """Where new experiments keep artifacts: ``<root>/mlruns`` for the default store, else None (server's choice)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (Path(root or Path.cwd()).resolve() / "mlruns").as_uri()


def configure(uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, artifacts: str | None = None) -> str:
    """Point mlflow at ``uri`` (default :func:`tracking_uri`) and ``experiment`` (created with
    ``artifacts`` as its artifact location, default :func:`artifact_root`); return the experiment id."""
    import mlflow

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        exp_id = found.experiment_id
    else:
        if artifacts is None and uri == tracking_uri():
            artifacts = artifact_root()
        location = None if artifacts is None else f"{artifacts.rstrip('/')}/{experiment}"
        exp_id = mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@contextmanager
def start_run(
    run_name: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    uri: str | None = None,
    artifacts: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """An active MLflow run (``mlflow.ActiveRun``); ended (FAILED on an exception) on exit."""
    import mlflow

    exp_id = configure(uri, experiment, artifacts)
    with mlflow.start_run(run_name=run_name, experiment_id=exp_id, tags=dict(tags or {})) as run:
        log.info("mlflow run %s (%s) in %s", run.info.run_id, run_name, mlflow.get_tracking_uri())
        yield run


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: ``{"lora": {"r": 8}}`` -> ``{"lora.r": 8}``."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def log_params(params: Mapping[str, Any]) -> None:
    """Log (flattened) params to the active run; long values are cut to MLflow's limit."""
    import mlflow

    flat = {k: str(v)[:_MAX_PARAM] for k, v in flatten(params).items()}
    mlflow.log_params(flat)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the numeric entries of ``metrics`` (flattened; others skipped) to the active run."""
    import mlflow

    numeric = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numeric:
        mlflow.log_metrics(numeric, step=step)


def log_series(name: str, points: Iterable[tuple[int, float]]) -> None:
    """A curve (``(step, value)`` pairs) as one metric's history, e.g. the training loss."""
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(name, float(v), now, int(s)) for s, v in points]
    if metrics:
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("log_series needs an active run (use tracking.start_run)")
        client = mlflow.tracking.MlflowClient()
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])


def log_artifact(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Copy a file or a folder into the active run's artifacts."""
    import mlflow

    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
