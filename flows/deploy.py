"""Deploy the genprm flows to a Prefect work pool: a nightly pipeline and shards for GPU workers.

``python flows/deploy.py`` (against the Prefect server in ``PREFECT_API_URL``) creates the
process work pool ``genprm-gpu`` if it does not exist and creates or updates three
deployments whose code is this repository folder (``flow.from_source(<repo>, ...)``: a local
path, no git remote or image needed)::

    genprm-pipeline/nightly        the whole pipeline (flows/pipeline.py), cron "0 3 * * *"
    genprm-shard/shard             one worker's shards of rollout / montecarlo (flows/sharded.py)
    genprm-sharded-stage/sharded   a stage as N shard runs, then the merge (flows/sharded.py)

All three target the pool; nothing runs until a worker polls it.

Set up once (the server, on a machine every worker can reach)::

    prefect server start --host 0.0.0.0 --port 4200
    export PREFECT_API_URL=http://<server>:4200/api
    python flows/deploy.py --repo /shared/genprm [--pool genprm-gpu] [--cron "0 3 * * *"]
        [--timezone Europe/Paris] [--num-shards 4] [--no-schedule]

A GPU machine joins the pool with ONE command, run in the repository with its virtualenv
active (``make test`` / ``make demo`` build ``.venv`` from ``requirements/gpu.lock`` where
``nvidia-smi`` exists); the repository and its data must be at the same path as on the
deploying machine (one machine, or a shared filesystem)::

    PREFECT_API_URL=http://<server>:4200/api prefect worker start --pool genprm-gpu --limit 1

``--limit 1``: one flow run at a time per worker, so two shards never share a GPU (start one
worker per GPU, each with its own ``CUDA_VISIBLE_DEVICES``, to use several GPUs of one machine).
The worker runs each flow run as a subprocess of the worker's Python, with the worker's
environment.

Schedule: ``genprm-pipeline/nightly`` runs every night at 03:00 (``--cron``, ``--timezone``;
``--no-schedule`` deploys it without one). With ``--num-shards N`` (N > 1) the scheduled run
shards ``rollout`` and ``montecarlo`` over N runs of ``genprm-shard/shard``. The pipeline run
itself holds one worker slot while it waits for its shards, so give the pool at least N + 1
workers (or deploy the pipeline to a second, CPU pool with ``--pipeline-pool``).

Run by hand::

    prefect deployment run genprm-pipeline/nightly                      # now, with the deployed parameters
    prefect deployment run genprm-sharded-stage/sharded -p stage=rollout -p num_shards=4
    prefect deployment run genprm-shard/shard -p stage=montecarlo -p shard_index=0 -p num_shards=2

A sharded run works from a local parent too: ``python flows/sharded.py --stage rollout
--num-shards 4`` creates the shard runs, waits and merges here. See ``flows/sharded.py``
for how shards are split and merged.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("flows.deploy")

DEFAULT_POOL = "genprm-gpu"
DEFAULT_CRON = "0 3 * * *"
PIPELINE_DEPLOYMENT = "nightly"
SHARD_DEPLOYMENT = "shard"
SHARDED_STAGE_DEPLOYMENT = "sharded"
TAGS = ["genprm"]


def build_deployments(
    repo: str | Path = ".",
    *,
    pool: str = DEFAULT_POOL,
    cron: str | None = DEFAULT_CRON,
    timezone: str | None = None,
    num_shards: int = 1,
    pipeline_pool: str | None = None,
) -> list[Any]:
    """The three deployments (``RunnerDeployment``, not yet sent to the server), code from ``repo``.

    ``cron=None``: the pipeline without a schedule. ``pipeline_pool``: the pool of the
    pipeline and sharded-stage deployments (default ``pool``); shards always go to ``pool``.
    """
    from prefect import flow
    from prefect.schedules import Cron

    root = str(Path(repo).resolve())
    shard_full_name = f"genprm-shard/{SHARD_DEPLOYMENT}"
    orchestration_pool = pipeline_pool or pool
    pipeline_flow = flow.from_source(source=root, entrypoint="flows/pipeline.py:pipeline")
    shard_flow = flow.from_source(source=root, entrypoint="flows/sharded.py:shard")
    sharded_flow = flow.from_source(source=root, entrypoint="flows/sharded.py:sharded_stage")
    return [
        pipeline_flow.to_deployment(
            name=PIPELINE_DEPLOYMENT,
            work_pool_name=orchestration_pool,
            schedules=[Cron(cron, timezone=timezone)] if cron else None,
            parameters={"repo": root, "num_shards": num_shards, "shard_deployment": shard_full_name},
            tags=TAGS,
            description="The genprm DVC pipeline, stage by stage, with an MLflow parent run and a metrics summary.",
        ),
        shard_flow.to_deployment(
            name=SHARD_DEPLOYMENT,
            work_pool_name=pool,
            parameters={"repo": root},
            tags=TAGS,
            description="One worker's shards of rollout or montecarlo (--shard-index i --num-shards n --no-merge).",
        ),
        sharded_flow.to_deployment(
            name=SHARDED_STAGE_DEPLOYMENT,
            work_pool_name=orchestration_pool,
            parameters={"repo": root, "deployment": shard_full_name},
            tags=TAGS,
            description="rollout or montecarlo as N shard runs on the pool's workers, then the merge and dvc.lock.",
        ),
    ]


def ensure_pool(name: str = DEFAULT_POOL) -> Any:
    """The process work pool ``name``, created with Prefect's default process job template if missing."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            pool = client.create_work_pool(WorkPoolCreate(
                name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
                description="genprm workers (GPU machines): prefect worker start --pool " + name,
            ))
            log.info("created work pool %s", name)
            return pool
    if pool.type != "process":
        raise ValueError(f"work pool {name!r} exists with type {pool.type!r}; these deployments need 'process'")
    return pool


def deploy(
    repo: str | Path = ".",
    *,
    pool: str = DEFAULT_POOL,
    cron: str | None = DEFAULT_CRON,
    timezone: str | None = None,
    num_shards: int = 1,
    pipeline_pool: str | None = None,
) -> dict[str, str]:
    """Create the pool(s) if needed and apply the deployments; returns ``{full name: deployment id}``."""
    ensure_pool(pool)
    if pipeline_pool and pipeline_pool != pool:
        ensure_pool(pipeline_pool)
    ids = {}
    for dep in build_deployments(repo, pool=pool, cron=cron, timezone=timezone, num_shards=num_shards,
                                 pipeline_pool=pipeline_pool):
        ids[dep.full_name] = str(dep.apply())
        log.info("deployment %s -> pool %s (%s)", dep.full_name, dep.work_pool_name, ids[dep.full_name])
    return ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".", help="the repository folder every worker sees at this path")
    ap.add_argument("--pool", default=DEFAULT_POOL)
    ap.add_argument("--pipeline-pool", help="pool of the pipeline and sharded-stage runs (default: --pool)")
    ap.add_argument("--cron", default=DEFAULT_CRON, help="the pipeline's schedule")
    ap.add_argument("--timezone", help="IANA name for the cron schedule (default UTC)")
    ap.add_argument("--no-schedule", action="store_true", help="deploy the pipeline without a schedule")
    ap.add_argument("--num-shards", type=int, default=1, help="shards of rollout / montecarlo in scheduled runs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from prefect.settings import PREFECT_API_URL

    ids = deploy(args.repo, pool=args.pool, cron=None if args.no_schedule else args.cron, timezone=args.timezone,
                 num_shards=args.num_shards, pipeline_pool=args.pipeline_pool)
    for name, dep_id in ids.items():
        print(f"{name}  {dep_id}")
    url = PREFECT_API_URL.value() or "http://<server>:4200/api"
    print(f"\nGPU machines join with:\n  PREFECT_API_URL={url} prefect worker start --pool {args.pool} --limit 1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
