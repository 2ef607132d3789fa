"""Prefect flow that runs the DVC pipeline's stages as tasks.

Each stage of ``dvc.yaml`` becomes one task (``dvc repro --single-item <stage>``, so DVC
still decides whether the stage is out of date) with retries and its output in the Prefect
logs; after the last stage the flow publishes a markdown summary of every stage's metrics
as a Prefect artifact (key ``genprm-summary``), with the stage's durations from its untracked
``timings/<stage>.json`` (durations stay out of the DVC-tracked metrics files).

With ``track`` (the default) the stages run inside one MLflow parent run
(:func:`genprm.tracking.pipeline_run`, in the repository's MLflow store): it exports
``GENPRM_MLFLOW_PARENT_RUN_ID``, so the MLflow run of every stage subprocess becomes its child.

With ``num_shards`` > 1 the generation-heavy stages (``rollout``, ``montecarlo``) run as that
many shard runs on the work pool's workers and are then merged (``flows/sharded.py``); the
other stages run here. Deployments, the nightly schedule and how GPU machines join the work
pool: ``flows/deploy.py``.

Run it once, here::

    python flows/pipeline.py                      # all stages of ./dvc.yaml
    python flows/pipeline.py --stages prepare     # some of them
    python flows/pipeline.py --no-track           # without the MLflow parent run
    python flows/pipeline.py --num-shards 4       # rollout / montecarlo on 4 workers (needs flows/deploy.py)

Prefect starts a temporary local server when no ``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from genprm.scripts import load_script

sharded = load_script(Path(__file__).with_name("sharded.py"))


def stage_names(repo: Path) -> list[str]:
    """Stages of ``dvc.yaml`` in file order (the order they depend on each other)."""
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def stage_metrics_paths(repo: Path, stage: str) -> list[Path]:
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]
    out = []
    for entry in spec.get("metrics", []):
        out.append(repo / (next(iter(entry)) if isinstance(entry, dict) else entry))
    return out


def stage_timings(repo: Path, stage: str) -> dict[str, dict]:
    """``{"timings/<stage>.json": data}`` when the stage wrote its durations there, else ``{}``."""
    path = repo / "timings" / f"{stage}.json"
    return {str(path.relative_to(repo)): json.loads(path.read_text())} if path.is_file() else {}


@task(retries=2, retry_delay_seconds=10, task_run_name="stage-{stage}")
def run_stage(stage: str, repo: str) -> dict:
    """``dvc repro --single-item stage``; returns the stage's metrics files and timings file as dicts."""
    log = get_run_logger()
    root = Path(repo)
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--single-item", stage],
        cwd=root, capture_output=True, text=True,
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        log.info("[%s] %s", stage, line)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}); see the log above")
    files = {str(p.relative_to(root)): json.loads(p.read_text()) for p in stage_metrics_paths(root, stage) if p.exists()}
    return {**files, **stage_timings(root, stage)}


def summary_markdown(metrics: dict[str, dict], mlflow_run_id: str | None = None) -> str:
    """One section per stage, one row per scalar metric (nested keys dotted)."""
    lines = ["# genprm pipeline", ""]
    if mlflow_run_id:
        lines += [f"MLflow parent run: `{mlflow_run_id}`", ""]
    for stage, files in metrics.items():
        lines += [f"## {stage}", "", "| metric | value |", "| --- | --- |"]
        for fname, data in files.items():
            for key, value in _flatten(data):
                lines.append(f"| {fname}:{key} | {value} |")
        lines.append("")
    return "\n".join(lines)


def _flatten(data, prefix: str = ""):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif not isinstance(data, list):
        yield prefix, data


@contextmanager
def parent_run(root: Path, names: list[str], track: bool) -> Iterator[str | None]:
    """The MLflow parent run of the stages (its id), or nothing when ``track`` is off."""
    if not track:
        yield None
        return
    from prefect.runtime import flow_run

    from genprm import tracking

    tags = {"prefect.flow": "genprm-pipeline", "prefect.flow_run_id": str(flow_run.id or ""),
            "stages": ",".join(names)}
    # mlflow.set_tracking_uri / set_experiment write these to os.environ: put them back afterwards,
    # so later runs in this process (another repo, a test) do not log into this repository's store
    saved = {k: os.environ.get(k) for k in (tracking.PARENT_RUN_ENV, "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    try:
        # the repository's store, as the stages (run with the repository as working directory) see it
        with tracking.pipeline_run("pipeline", tags=tags, uri=tracking.tracking_uri(root),
                                   artifacts=tracking.artifact_root(root)) as run:
            run_id = run.info.run_id
            get_run_logger().info("MLflow parent run %s", run_id)
            yield run_id
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@flow(name="genprm-pipeline")
def pipeline(
    repo: str = ".",
    stages: list[str] | None = None,
    track: bool = True,
    num_shards: int = 1,
    shard_deployment: str = sharded.SHARD_DEPLOYMENT,
) -> dict[str, dict]:
    """Run ``stages`` (default: all of ``dvc.yaml``) in order; publish the metrics summary.

    ``track``: one MLflow parent run around the stages. ``num_shards`` > 1: the shardable
    stages run as that many runs of ``shard_deployment`` on the work pool, then merge.
    """
    root = Path(repo).resolve()
    names = stages or stage_names(root)
    unknown = sorted(set(names) - set(stage_names(root)))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; dvc.yaml has {stage_names(root)}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    metrics: dict[str, dict] = {}
    with parent_run(root, names, track) as run_id:
        for name in names:
            if num_shards > 1 and name in sharded.SHARDED_STAGES:
                result = sharded.sharded_stage(stage=name, num_shards=num_shards, repo=str(root),
                                               deployment=shard_deployment)
                metrics[name] = {**result["metrics"], **stage_timings(root, name)}
            else:
                metrics[name] = run_stage(name, str(root))
    create_markdown_artifact(key="genprm-summary", markdown=summary_markdown(metrics, run_id),
                             description="pipeline metrics")
    return metrics


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".")
    ap.add_argument("--stages", nargs="*")
    ap.add_argument("--no-track", dest="track", action="store_false", help="no MLflow parent run")
    ap.add_argument("--num-shards", type=int, default=1, help="shard rollout / montecarlo over the pool's workers")
    ap.add_argument("--shard-deployment", default=sharded.SHARD_DEPLOYMENT)
    args = ap.parse_args()
    pipeline(repo=args.repo, stages=args.stages, track=args.track, num_shards=args.num_shards,
             shard_deployment=args.shard_deployment)
