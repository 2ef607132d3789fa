"""The ``make bands`` sweep as Prefect flows, so its cells can spread over the workers of a work pool.

- ``genprm-bands-cell`` (:func:`cell`): ONE cell, the same experiment as ``make bands`` runs, at
  once in a temporary copy of the repository: ``dvc exp run --temp -f -S seed=S -S kernel_path=P
  --name bands-sS-P`` (``bench/bands.py``). The experiment lands in the repository's git refs.
- ``genprm-bands`` (:func:`bands_sweep`): every cell of seeds x kernel paths, then the same collection
  as ``make bands`` (``metrics/bands.json``, ``plots/bands.png``, MLflow parent and child runs).
  Without ``deployment`` the cells run here one after the other (one task each); with it, each cell
  is a run of that deployment of :func:`cell` (``run_deployment``), taken by whichever worker of its
  pool is free, and the parent waits for all of them (as ``flows/sharded.py`` does for shards).

Every worker must see the repository at the same path (one machine or a shared filesystem), as for
the shards: the experiments are written into that repository's ``.git``.

Use::

    python flows/bands.py                                   # here, cell after cell
    python flows/bands.py --deploy --pool genprm-gpu        # create the deployment genprm-bands-cell/cell
    prefect worker start --pool genprm-gpu --limit 1        # on each machine (repository at the same path)
    python flows/bands.py --deployment genprm-bands-cell/cell
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from genprm.scripts import load_script

CELL_DEPLOYMENT = "genprm-bands-cell/cell"
_HERE = Path(__file__).resolve()


driver = load_script(_HERE.parents[1] / "bench" / "bands.py")
sharded = load_script(_HERE.with_name("sharded.py"))


@task(retries=1, retry_delay_seconds=30, task_run_name="{name}")
def run_cell(repo: str, seed: int, kernel_path: str, name: str) -> str:
    """``dvc exp run --temp -f -S seed=.. -S kernel_path=.. --name NAME`` in ``repo``, its output logged."""
    argv = driver.exp_command({"seed": seed, "kernel_path": kernel_path, "name": name})
    sharded.run_logged(argv, Path(repo).resolve(), name)
    return name


@flow(name="genprm-bands-cell", flow_run_name="{name}")
def cell(seed: int, kernel_path: str, name: str, repo: str = ".") -> str:
    """One cell of the sweep (what a worker runs)."""
    return run_cell(str(Path(repo).resolve()), seed, kernel_path, name)


@flow(name="genprm-bands")
def bands_sweep(
    repo: str = ".",
    seeds: list[int] | None = None,
    kernel_paths: list[str] | None = None,
    deployment: str | None = None,
    track: bool = True,
    out: str = "metrics/bands.json",
    plot: str = "plots/bands.png",
    timeout_s: float | None = None,
    poll_s: float = 10.0,
) -> dict[str, Any]:
    """Every cell (here, or as runs of ``deployment``), then ``metrics/bands.json`` and the plot; returns the bands."""
    from prefect.deployments import run_deployment

    log = get_run_logger()
    root = str(Path(repo).resolve())
    wanted = driver.cells(seeds if seeds is not None else list(driver.SEEDS),
                          kernel_paths if kernel_paths is not None else list(driver.KERNEL_PATHS))
    if deployment is None:
        for c in wanted:
            try:
                run_cell(root, c["seed"], c["kernel_path"], c["name"])
            except Exception as exc:  # a failed cell is missing from the bands, the others are collected
                log.error("cell %s failed: %s", c["name"], exc)
    else:
        created = [run_deployment(deployment, parameters={**c, "repo": root}, flow_run_name=c["name"], timeout=0)
                   for c in wanted]
        log.info("created %d cell runs of %s", len(created), deployment)
        finished = sharded.wait_for_runs([r.id for r in created], timeout_s, poll_s)
        for r in finished:
            if r.state.type.value != "COMPLETED":
                log.error("cell run %s: %s", r.name, r.state.type.value)
    runs = driver.read_experiments(root, wanted)
    if len(runs) < len(wanted):
        log.warning("%d of %d cells have results", len(runs), len(wanted))
    return driver.write_outputs(root, runs, out=out, plot=plot, track=track)


def build_cell_deployment(repo: str | Path = ".", pool: str = "genprm-gpu") -> Any:
    """The deployment of :func:`cell` (code from ``repo``, a local folder), not yet sent to the server."""
    root = str(Path(repo).resolve())
    source = flow.from_source(source=root, entrypoint="flows/bands.py:cell")
    return source.to_deployment(name=CELL_DEPLOYMENT.split("/")[1], work_pool_name=pool, parameters={"repo": root},
                                description="One cell (seed, kernel path) of the make bands sweep, as a DVC experiment.")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".")
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--kernel-paths", nargs="+")
    ap.add_argument("--deployment", help=f"run cells as runs of this deployment (e.g. {CELL_DEPLOYMENT})")
    ap.add_argument("--no-track", dest="track", action="store_false")
    ap.add_argument("--deploy", action="store_true", help="create the cell deployment on the server and exit")
    ap.add_argument("--pool", default="genprm-gpu")
    args = ap.parse_args()
    if args.deploy:  # the pool as flows/deploy.py creates it, then the deployment
        _load(_HERE.with_name("deploy.py")).ensure_pool(args.pool)
        dep = build_cell_deployment(args.repo, args.pool)
        print(f"deployment {dep.full_name} -> pool {args.pool} ({dep.apply()})")
        raise SystemExit(0)
    bands_sweep(repo=args.repo, seeds=args.seeds, kernel_paths=args.kernel_paths, deployment=args.deployment,
                track=args.track)
