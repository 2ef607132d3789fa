"""Run a generation-heavy stage (``rollout``, ``montecarlo``) as shards on several Prefect workers.

Two flows:

- ``genprm-shard`` (:func:`shard`): ONE worker's share of a stage. It runs the stage's own
  command from ``dvc.yaml`` with ``--shard-index i --num-shards n --no-merge`` appended, so
  the worker does the shards ``s`` with ``s % n == i``. Shards are written atomically to the
  stage's shard folder (``work/<stage>/``) and a re-run skips the ones that exist, so a
  retried or restarted shard run only does what is missing.
- ``genprm-sharded-stage`` (:func:`sharded_stage`): the parent. It creates ``num_shards``
  runs of the ``genprm-shard`` deployment with :func:`prefect.deployments.run_deployment`
  (they land on whatever workers poll that deployment's work pool, one run per worker with
  ``prefect worker start --pool P --limit 1``), waits for all of them, fails if any did not
  complete, then runs ``dvc repro --single-item <stage>``.

Why the merge is a plain ``dvc repro``: the stage's command runs every missing shard and then
merges (see ``genprm.labeling.runner``); the generator is created only when a shard is
missing. Once all shard runs have completed, no shard is missing, so DVC's run of the full
command loads no model, only merges, writes the stage's outputs and metrics, and records the
stage in ``dvc.lock`` exactly as an unsharded ``dvc repro`` would (same command, same deps
and outs). The merged records are the same, in the same order, as a one-process run's: a
shard's content depends only on its items and the seed. The metrics' ``shards.done_now`` is 0
after a sharded run; if it is not (shards were cleared because the config or inputs changed
between the shard runs and the merge), the merge computed them itself and the flow logs a
warning. When ``dvc status`` says the stage is already up to date, no shard runs are created.

Every worker must see the repository at the same path (one machine, or a shared filesystem
such as NFS): the shards are files in ``<repo>/work/<stage>/`` that the merge reads.

Use (deployments from ``flows/deploy.py``; ``PREFECT_API_URL`` pointing at the server)::

    prefect worker start --pool genprm-gpu --limit 1          # on each GPU machine
    prefect deployment run genprm-sharded-stage/sharded -p stage=rollout -p num_shards=4
    python flows/sharded.py --stage rollout --num-shards 4    # the parent, from here
    python flows/pipeline.py --num-shards 4                   # the whole pipeline, sharded

One shard without Prefect workers: ``python flows/sharded.py --stage rollout --shard-index 0
--num-shards 2 --shard-only``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task

SHARDED_STAGES = ("rollout", "montecarlo")
"""Stages whose command takes ``--shard-index / --num-shards / --no-merge``."""

SHARD_DEPLOYMENT = "genprm-shard/shard"
"""Default ``flow name/deployment name`` of the shard flow's deployment (``flows/deploy.py``)."""

FORWARDED_ENV = ("GENPRM_MLFLOW_PARENT_RUN_ID", "MLFLOW_TRACKING_URI")
"""Environment passed on to the shard runs (as the ``env`` job variable) when set here."""


def stage_spec(repo: str | Path, stage: str) -> dict:
    """The stage's entry in ``<repo>/dvc.yaml``; ``ValueError`` naming the stages that exist."""
    stages = yaml.safe_load((Path(repo) / "dvc.yaml").read_text())["stages"]
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}; dvc.yaml has {list(stages)}")
    return stages[stage]


_TEMPLATE = re.compile(r"\$\{\s*([^}\s]+)\s*\}")


def resolve_templates(repo: str | Path, text: str) -> str:
    """``text`` with DVC's ``${dotted.key}`` filled in from ``<repo>/params.yaml`` (as ``dvc repro`` does
    for the keys this project uses: plain values of params.yaml, no ``vars``); an unknown key raises."""
    if not _TEMPLATE.search(text):
        return text
    params = yaml.safe_load((Path(repo) / "params.yaml").read_text()) or {}

    def value(match: re.Match) -> str:
        node: Any = params
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"{match.group(0)}: no key {match.group(1)!r} in {Path(repo) / 'params.yaml'}")
            node = node[part]
        if isinstance(node, (dict, list, bool)) or node is None:
            raise ValueError(f"{match.group(0)}: {match.group(1)!r} is not a string or number")
        return str(node)

    return _TEMPLATE.sub(value, text)


def stage_command(repo: str | Path, stage: str) -> list[str]:
    """The stage's ``cmd`` from ``dvc.yaml`` as argv, templates filled in from ``params.yaml``
    (``${kernel_path}``), with ``python`` replaced by this interpreter (``python -m genprm.kernels``
    runs the stage's own ``python`` under the same interpreter)."""
    cmd = stage_spec(repo, stage)["cmd"]
    if not isinstance(cmd, str):
        raise ValueError(f"stage {stage!r}: expected one command string, got {cmd!r}")
    argv = shlex.split(resolve_templates(repo, cmd))
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def shard_command(repo: str | Path, stage: str, shard_index: int, num_shards: int) -> list[str]:
    """The command one worker runs: the stage's command plus its shard arguments."""
    if stage not in SHARDED_STAGES:
        raise ValueError(f"stage {stage!r} cannot be sharded; shardable stages: {list(SHARDED_STAGES)}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index} and {num_shards}")
    return [*stage_command(repo, stage), "--shard-index", str(shard_index), "--num-shards", str(num_shards),
            "--no-merge"]


def stage_metrics(repo: str | Path, stage: str) -> dict[str, Any]:
    """The stage's metrics files (``dvc.yaml`` ``metrics``) that exist, as ``{path: data}``."""
    out = {}
    for entry in stage_spec(repo, stage).get("metrics", []):
        rel = next(iter(entry)) if isinstance(entry, dict) else entry
        path = Path(repo) / rel
        if path.exists():
            out[rel] = json.loads(path.read_text())
    return out


def run_logged(argv: list[str], cwd: str | Path, label: str) -> None:
    """Run ``argv`` in ``cwd``, streaming its output line by line into the run's log; raise on failure."""
    log = get_run_logger()
    log.info("[%s] $ %s", label, shlex.join(argv))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                log.info("[%s] %s", label, line.rstrip())
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed (exit {proc.returncode}); see the log above")


def stage_up_to_date(repo: str | Path, stage: str) -> bool:
    """Whether ``dvc status <stage>`` reports nothing to do for this stage."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", stage], cwd=repo,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status {stage} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout or "{}") == {}


@flow(name="genprm-shard", flow_run_name="{stage}-shard-{shard_index}-of-{num_shards}",
      retries=1, retry_delay_seconds=30)
def shard(stage: str, shard_index: int, num_shards: int, repo: str = ".") -> dict:
    """One worker's shards of ``stage``; returns where and how long it ran."""
    log = get_run_logger()
    root = Path(repo).resolve()
    argv = shard_command(root, stage, shard_index, num_shards)
    # a run started by a Prefect worker is a child process of that worker: parent_pid names the worker
    where = {"host": socket.gethostname(), "pid": os.getpid(), "parent_pid": os.getppid()}
    log.info("%s shard %d of %d in %s on %s (pid %d, parent pid %d)", stage, shard_index, num_shards, root,
             where["host"], where["pid"], where["parent_pid"])
    if os.environ.get(FORWARDED_ENV[0]):
        log.info("MLflow parent run %s", os.environ[FORWARDED_ENV[0]])
    t0 = time.perf_counter()
    run_logged(argv, root, f"{stage}:{shard_index}/{num_shards}")
    return {"stage": stage, "shard_index": shard_index, "num_shards": num_shards, **where,
            "seconds": round(time.perf_counter() - t0, 3)}


def wait_for_runs(run_ids: list, timeout_s: float | None, poll_s: float) -> list:
    """Poll the API until every flow run is in a final state; return them in the given order."""
    from prefect import get_client

    log = get_run_logger()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    done: dict = {}
    with get_client(sync_client=True) as client:
        while True:
            for rid in run_ids:
                if rid in done:
                    continue
                run = client.read_flow_run(rid)
                if run.state is not None and run.state.is_final():
                    done[rid] = run
                    log.info("shard run %s: %s", run.name, run.state.type.value)
            if len(done) == len(run_ids):
                return [done[rid] for rid in run_ids]
            if deadline is not None and time.monotonic() > deadline:
                waiting = [str(rid) for rid in run_ids if rid not in done]
                raise TimeoutError(f"shard runs not finished after {timeout_s} s: {waiting}")
            time.sleep(poll_s)


@task(retries=1, retry_delay_seconds=10, task_run_name="merge-{stage}")
def merge_stage(stage: str, repo: str) -> dict:
    """``dvc repro --single-item stage`` once every shard exists: merges and records the stage."""
    log = get_run_logger()
    run_logged([sys.executable, "-m", "dvc", "repro", "--single-item", stage], repo, f"{stage}:merge")
    metrics = stage_metrics(repo, stage)
    for name, data in metrics.items():
        done_now = (data.get("shards") or {}).get("done_now") if isinstance(data, dict) else None
        if done_now:
            log.warning("%s: the merge step computed %s shards itself (shards were missing or stale)", name, done_now)
    return metrics


@flow(name="genprm-sharded-stage", flow_run_name="{stage}-x{num_shards}")
def sharded_stage(
    stage: str,
    num_shards: int = 2,
    repo: str = ".",
    deployment: str = SHARD_DEPLOYMENT,
    timeout_s: float | None = None,
    poll_s: float = 5.0,
) -> dict:
    """Run ``stage`` as ``num_shards`` runs of ``deployment`` on the pool's workers, then merge.

    Returns ``{"shard_runs": [{name, id, state}], "metrics": {metrics file: data}}``.
    """
    from prefect.deployments import run_deployment

    log = get_run_logger()
    root = Path(repo).resolve()
    shard_command(root, stage, 0, num_shards)  # validates stage and num_shards before any run is created
    runs: list[dict] = []
    if stage_up_to_date(root, stage):
        log.info("%s is up to date (dvc status): no shard runs", stage)
    else:
        env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        created = [
            run_deployment(
                deployment,
                parameters={"stage": stage, "shard_index": i, "num_shards": num_shards, "repo": str(root)},
                flow_run_name=f"{stage}-shard-{i}-of-{num_shards}",
                timeout=0,
                job_variables={"env": env} if env else None,
            )
            for i in range(num_shards)
        ]
        log.info("created %d shard runs of %s: %s", len(created), deployment, [r.name for r in created])
        finished = wait_for_runs([r.id for r in created], timeout_s, poll_s)
        runs = [{"name": r.name, "id": str(r.id), "state": r.state.type.value} for r in finished]
        failed = [r for r in runs if r["state"] != "COMPLETED"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {num_shards} shard runs did not complete: {failed}")
    return {"shard_runs": runs, "metrics": merge_stage(stage, str(root))}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=SHARDED_STAGES)
    ap.add_argument("--num-shards", type=int, default=2)
    ap.add_argument("--repo", default=".")
    ap.add_argument("--deployment", default=SHARD_DEPLOYMENT)
    ap.add_argument("--timeout-s", type=float)
    ap.add_argument("--shard-index", type=int, help="with --shard-only: run this one shard here")
    ap.add_argument("--shard-only", action="store_true", help="run one shard in this process, no workers")
    args = ap.parse_args()
    if args.shard_only:
        shard(stage=args.stage, shard_index=args.shard_index or 0, num_shards=args.num_shards, repo=args.repo)
    else:
        sharded_stage(stage=args.stage, num_shards=args.num_shards, repo=args.repo, deployment=args.deployment,
                      timeout_s=args.timeout_s)
