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

One parent run per pipeline execution, one child run per stage: :func:`pipeline_run` starts the
parent and exports its id as ``GENPRM_MLFLOW_PARENT_RUN_ID`` (and the store as
``MLFLOW_TRACKING_URI``) for the processes started inside the block; :func:`start_run` in such a
process (a DVC stage run by ``dvc repro``) nests its run under that parent. Inside one process
a run started while another is active nests under the active one. From the shell::

    genprm track -- dvc repro          # every stage's run becomes a child of one "pipeline" run

See runs with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``. Later parts (model
registry, serving) go through :func:`configure` / :func:`start_run` too, so every part shares
one store. MLflow forbids some characters in metric, param and tag names (``@`` among them):
:func:`safe_key` rewrites them (``pass@1`` -> ``pass_at_1``). mlflow is imported only when a
function is called.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_EXPERIMENT",
    "PARENT_RUN_ENV",
    "tracking_uri",
    "artifact_root",
    "configure",
    "start_run",
    "pipeline_run",
    "parent_run_id",
    "git_commit",
    "safe_key",
    "flatten",
    "log_params",
    "log_metrics",
    "log_series",
    "log_artifact",
]

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "genprm"
PARENT_RUN_ENV = "GENPRM_MLFLOW_PARENT_RUN_ID"
_MAX_PARAM = 6000  # MLflow's limit on a param value's length
_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")  # MLflow's rule for metric, param and tag names (POSIX)


def tracking_uri(root: str | os.PathLike | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<root>/mlflow.db`` (root: the working directory)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = Path(root or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(root: str | os.PathLike | None = None) -> str | None:
    """Where new experiments keep artifacts: ``<root>/mlruns`` for the default store, else None (server's choice).

    With ``MLFLOW_TRACKING_URI`` set (mlflow itself sets it on ``set_tracking_uri``) a local
    sqlite store keeps its artifacts in ``mlruns/`` beside the database file.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return _sqlite_artifacts(env)
    return (Path(root or Path.cwd()).resolve() / "mlruns").as_uri()


def _sqlite_artifacts(uri: str) -> str | None:
    """``<folder of the database>/mlruns`` for a ``sqlite:///`` file store, else None."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return (Path(uri[len(prefix):]).resolve().parent / "mlruns").as_uri()


def configure(uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, artifacts: str | None = None) -> str:
    """Point mlflow at ``uri`` (default :func:`tracking_uri`) and ``experiment`` (created with
    ``artifacts`` as its artifact location; default: ``mlruns/`` beside a sqlite database, the
    server's choice otherwise); return the experiment id."""
    import mlflow

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        exp_id = found.experiment_id
    else:
        if artifacts is None:
            artifacts = _sqlite_artifacts(uri)
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
    """An active MLflow run (``mlflow.ActiveRun``); ended (FAILED on an exception) on exit.

    The run is a child of the run active in this thread if there is one, else of the pipeline
    run named by ``GENPRM_MLFLOW_PARENT_RUN_ID`` (see :func:`pipeline_run`); a child is created
    in its parent's experiment. A parent id the store does not know is logged and ignored.
    """
    import mlflow

    exp_id = configure(uri, experiment, artifacts)
    active = mlflow.active_run()
    parent = None
    if active is not None:
        parent, exp_id = active.info.run_id, active.info.experiment_id
    elif os.environ.get(PARENT_RUN_ENV):
        parent_id = os.environ[PARENT_RUN_ENV]
        try:
            exp_id = mlflow.MlflowClient().get_run(parent_id).info.experiment_id
            parent = parent_id
        except Exception as exc:  # another store, or a deleted run: log a top-level run instead
            log.warning("%s=%s is not a run of %s (%s); starting a top-level run",
                        PARENT_RUN_ENV, parent_id, mlflow.get_tracking_uri(), exc)
    with mlflow.start_run(run_name=run_name, experiment_id=exp_id, tags=dict(tags or {}),
                          nested=active is not None, parent_run_id=parent) as run:
        log.info("mlflow run %s (%s) in %s%s", run.info.run_id, run_name, mlflow.get_tracking_uri(),
                 f", child of {parent}" if parent else "")
        yield run


def parent_run_id() -> str | None:
    """The pipeline run that new runs of this process nest under (``GENPRM_MLFLOW_PARENT_RUN_ID``), if any."""
    return os.environ.get(PARENT_RUN_ENV) or None


@contextmanager
def pipeline_run(
    name: str = "pipeline",
    tags: Mapping[str, str] | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    uri: str | None = None,
    artifacts: str | None = None,
) -> Iterator[Any]:
    """The parent run of one pipeline execution (``mlflow.ActiveRun``, tag ``genprm.kind=pipeline``).

    During the block ``GENPRM_MLFLOW_PARENT_RUN_ID`` holds its id and ``MLFLOW_TRACKING_URI``
    the store (so a stage started from another directory finds the same store); both, and
    ``MLFLOW_EXPERIMENT_ID`` (which mlflow sets), are restored on exit. Runs started by :func:`start_run` in this thread or in processes started
    inside the block (``dvc repro``, Prefect tasks) become its children. The run ends FAILED
    when the block raises.
    """
    resolved = uri or tracking_uri()
    # saved before mlflow runs: mlflow.set_tracking_uri / set_experiment write these variables too
    saved = {k: os.environ.get(k) for k in (PARENT_RUN_ENV, "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    try:
        with start_run(name, experiment=experiment, uri=resolved, artifacts=artifacts,
                       tags={"genprm.kind": "pipeline", **dict(tags or {})}) as run:
            os.environ[PARENT_RUN_ENV] = run.info.run_id
            os.environ["MLFLOW_TRACKING_URI"] = resolved
            yield run
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """``git rev-parse HEAD`` of the repository holding ``cwd`` (default: the working directory), else ``"unknown"``."""
    import subprocess

    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def safe_key(name: str) -> str:
    """``name`` as a valid MLflow metric/param/tag name: ``@`` -> ``_at_``, other forbidden characters -> ``_``."""
    return _BAD_KEY_CHARS.sub("_", name.replace("@", "_at_"))


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

    flat = {safe_key(k): str(v)[:_MAX_PARAM] for k, v in flatten(params).items()}
    mlflow.log_params(flat)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the numeric entries of ``metrics`` (flattened, names made :func:`safe_key`; others skipped)."""
    import mlflow

    numeric = {safe_key(k): float(v) for k, v in flatten(metrics).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numeric:
        mlflow.log_metrics(numeric, step=step)


def log_series(name: str, points: Iterable[tuple[int, float]]) -> None:
    """A curve (``(step, value)`` pairs) as one metric's history, e.g. the training loss."""
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(safe_key(name), float(v), now, int(s)) for s, v in points]
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
