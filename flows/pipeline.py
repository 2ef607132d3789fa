"""Prefect flow that runs the DVC pipeline's stages as tasks.

Each stage of ``dvc.yaml`` becomes one task (``dvc repro --single-item <stage>``, so DVC
still decides whether the stage is out of date) with retries and its output in the Prefect
logs; after the last stage the flow publishes a markdown summary of every stage's metrics
as a Prefect artifact (key ``genprm-summary``).

Run it once, here::

    python flows/pipeline.py                      # all stages of ./dvc.yaml
    python flows/pipeline.py --stages prepare     # some of them

Prefect starts a temporary local server when no ``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact


def stage_names(repo: Path) -> list[str]:
    """Stages of ``dvc.yaml`` in file order (the order they depend on each other)."""
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def stage_metrics_paths(repo: Path, stage: str) -> list[Path]:
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]
    out = []
    for entry in spec.get("metrics", []):
        out.append(repo / (next(iter(entry)) if isinstance(entry, dict) else entry))
    return out


@task(retries=2, retry_delay_seconds=10, task_run_name="stage-{stage}")
def run_stage(stage: str, repo: str) -> dict:
    """``dvc repro --single-item stage``; returns the stage's metrics files as dicts."""
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
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in stage_metrics_paths(root, stage) if p.exists()}


def summary_markdown(metrics: dict[str, dict]) -> str:
    """One section per stage, one row per scalar metric (nested keys dotted)."""
    lines = ["# genprm pipeline", ""]
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


@flow(name="genprm-pipeline")
def pipeline(repo: str = ".", stages: list[str] | None = None) -> dict[str, dict]:
    """Run ``stages`` (default: all of ``dvc.yaml``) in order; publish the metrics summary."""
    root = Path(repo).resolve()
    names = stages or stage_names(root)
    unknown = sorted(set(names) - set(stage_names(root)))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; dvc.yaml has {stage_names(root)}")
    metrics = {name: run_stage(name, str(root)) for name in names}
    create_markdown_artifact(key="genprm-summary", markdown=summary_markdown(metrics), description="pipeline metrics")
    return metrics


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".")
    ap.add_argument("--stages", nargs="*")
    args = ap.parse_args()
    pipeline(repo=args.repo, stages=args.stages)
