"""``make bands``: the whole pipeline once per cell of seeds x CPU kernel paths, as DVC experiments.

For every cell it runs ``dvc exp run --temp -f -S seed=S -S kernel_path=P --name bands-sS-P``
(``--temp``: in a temporary copy of the repository, in the foreground; ``-f``: a cell of an earlier
sweep with the same name is replaced, and every stage runs, none is taken from the cache), JOBS cells
at a time, reads each experiment's params and metrics files from ``dvc exp show --json`` and writes

- ``metrics/bands.json``: every run, each headline metric's values and band (min / median / max),
  each acceptance criterion per run (:mod:`genprm.bands`);
- ``plots/bands.png``: one panel per headline metric, a dot per run coloured by kernel path;
- one MLflow parent run ``bands`` with a child run per cell (unless ``--no-track``).

The workspace is left as it was: the experiments run in temporary copies of the repository
(committed files plus uncommitted changes to tracked files; untracked files are not copied).
Results stay available as experiments (``dvc exp show``, ``dvc exp apply bands-s1-avx2``).
DVC's background queue (``dvc exp run --queue`` + ``--run-all``) is not used: its worker can stop
between experiments and leave ``--run-all`` waiting for ever (DVC issues 8165, 10398, 10428), which
a sweep of an hour or more cannot afford. Each cell's output goes to ``work/bands/<name>.log``; a
cell that fails is logged and the others still run.

Use::

    python bench/bands.py                                   # seeds 0 1 2 x native avx2, one at a time
    python bench/bands.py --jobs 2 --seeds 0 1              # two experiments at once
    python bench/bands.py --collect-only                    # only re-read the experiments of a sweep

The same cells on several machines (Prefect work pool): ``flows/bands.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from genprm import bands  # noqa: E402
from genprm.records import write_json  # noqa: E402

log = logging.getLogger("bench.bands")

SEEDS = (0, 1, 2)
KERNEL_PATHS = ("native", "avx2")
PREFIX = "bands"


def exp_name(seed: int, kernel_path: str, prefix: str = PREFIX) -> str:
    """The experiment name of one cell, e.g. ``bands-s1-avx2``."""
    return f"{prefix}-s{seed}-{kernel_path}"


def cells(seeds: Sequence[int], kernel_paths: Sequence[str], prefix: str = PREFIX) -> list[dict[str, Any]]:
    """Every (seed, kernel path) with its experiment name, seeds outer."""
    from genprm.kernels import KERNEL_PATHS as KNOWN

    unknown = sorted(set(kernel_paths) - set(KNOWN))
    if unknown:
        raise ValueError(f"unknown kernel paths {unknown}; known: {list(KNOWN)}")
    return [{"seed": s, "kernel_path": p, "name": exp_name(s, p, prefix)} for s in seeds for p in kernel_paths]


def _dvc_env() -> dict[str, str]:
    """The environment of every DVC command the sweep runs (no analytics calls)."""
    return dict(os.environ, DVC_NO_ANALYTICS="1")


def exp_command(cell: dict[str, Any]) -> list[str]:
    """``dvc exp run`` of one cell, at once in a temporary copy of the repository (``--temp``)."""
    return [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-f",
            "-S", f"seed={cell['seed']}", "-S", f"kernel_path={cell['kernel_path']}", "--name", cell["name"]]


def run_cells(repo: str | Path, wanted: Sequence[dict[str, Any]], jobs: int = 1,
              log_dir: str | Path = "work/bands") -> list[str]:
    """Run every cell's experiment, ``jobs`` at a time; returns the names of the cells whose run failed.

    Each cell's DVC output goes to ``<repo>/<log_dir>/<name>.log`` (follow it with ``tail -f``); the
    end of a failed cell's log is logged."""
    from concurrent.futures import ThreadPoolExecutor

    logs = Path(repo) / log_dir
    logs.mkdir(parents=True, exist_ok=True)

    def one(cell: dict[str, Any]) -> str | None:
        path = logs / f"{cell['name']}.log"
        log.info("cell %s: started, output in %s", cell["name"], path)
        start = time.perf_counter()
        with open(path, "w") as out:
            code = subprocess.run(exp_command(cell), cwd=repo, stdout=out, stderr=subprocess.STDOUT,
                                  env=_dvc_env()).returncode
        minutes = (time.perf_counter() - start) / 60
        if code != 0:
            tail = path.read_text(errors="replace").strip()[-2000:]
            log.error("cell %s failed (exit %d) after %.1f min: %s", cell["name"], code, minutes, tail)
            return cell["name"]
        log.info("cell %s: done in %.1f min", cell["name"], minutes)
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [name for name in pool.map(one, wanted) if name]


def dvc(repo: str | Path, *args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m dvc ARGS`` in ``repo``; with ``check``, raises with DVC's output when it fails."""
    argv = [sys.executable, "-m", "dvc", *args]
    log.info("$ %s", shlex.join(["dvc", *args]))
    proc = subprocess.run(argv, cwd=repo, capture_output=capture, text=True, env=_dvc_env())
    if proc.returncode != 0 and check:
        detail = f": {(proc.stderr or proc.stdout or '').strip()[-2000:]}" if capture else ""
        raise RuntimeError(f"dvc {' '.join(args)} failed (exit {proc.returncode}){detail}")
    return proc


def _walk_experiments(show: list[dict]) -> list[dict]:
    """Every experiment revision in ``dvc exp show --json`` output (baselines left out)."""
    out = []
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            out += exp.get("revs") or []
    return out


def _committed_json(repo: str | Path, rev: str | None, path: str, shown: Any) -> Any:
    """``path`` (JSON) at the experiment's commit ``rev``; what ``dvc exp show`` gave when git cannot tell."""
    if rev:
        proc = subprocess.run(["git", "show", f"{rev}:{Path(path).as_posix()}"], cwd=repo, capture_output=True,
                              text=True)
        if proc.returncode == 0:
            try:
                return json.loads(proc.stdout)
            except ValueError as exc:
                log.warning("%s at %s is not JSON (%s); using dvc exp show's values", path, rev[:7], exc)
    return shown.get("data", {}) if isinstance(shown, dict) else {}


def read_experiments(repo: str | Path, wanted: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of ``wanted`` cells: ``{seed, kernel_path, name, metrics: {stem: data}, params}``, the experiments
    found with ``dvc exp show --json`` and their metrics files read from their commits. A cell without an
    experiment (failed, not run) is logged and left out."""
    show = json.loads(dvc(repo, "exp", "show", "--json", capture=True).stdout or "[]")
    by_name = {}
    for rev in _walk_experiments(show):
        if rev.get("name") and rev["name"] not in by_name:
            by_name[rev["name"]] = rev
    runs = []
    for cell in wanted:
        rev = by_name.get(cell["name"])
        if rev is None or rev.get("error"):
            log.warning("experiment %s: %s", cell["name"], "not found" if rev is None else rev["error"])
            continue
        data = rev.get("data") or {}
        # the files as the experiment committed them: `dvc exp show` leaves out non-scalar values (lists)
        metrics = {Path(path).stem: _committed_json(repo, rev.get("rev"), path, entry)
                   for path, entry in (data.get("metrics") or {}).items()}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        if (params.get("seed"), params.get("kernel_path")) != (cell["seed"], cell["kernel_path"]):
            log.warning("experiment %s has seed %s and kernel path %s; expected %s and %s", cell["name"],
                        params.get("seed"), params.get("kernel_path"), cell["seed"], cell["kernel_path"])
        runs.append({**cell, "metrics": metrics, "params": params})
    return runs


def write_outputs(repo: str | Path, runs: Sequence[dict[str, Any]], *, out: str = "metrics/bands.json",
                  plot: str = "plots/bands.png", track: bool = True) -> dict[str, Any]:
    """Collect ``runs`` into ``<repo>/out`` and ``<repo>/plot``; log them to MLflow with ``track``."""
    from genprm import tracking

    if not runs:
        raise RuntimeError("no experiment of the sweep has results: nothing to collect")
    result = bands.collect(runs)
    write_json(Path(repo) / out, result)
    try:
        bands.plot_bands(result, Path(repo) / plot)
    except ValueError as exc:
        log.warning("no plot: %s", exc)
    failed = [name for name, c in result["criteria"].items() if not c["all_ok"]]
    log.info("wrote %s (%d runs); criteria not held by every run: %s", out, len(runs), failed or "none")
    if track:
        run_id = bands.log_runs(result, artifacts=[Path(repo) / out, Path(repo) / plot],
                                uri=tracking.tracking_uri(repo))
        log.info("MLflow parent run %s", run_id)
    return result


def sweep(repo: str | Path = ".", seeds: Sequence[int] = SEEDS, kernel_paths: Sequence[str] = KERNEL_PATHS,
          jobs: int = 1, *, collect_only: bool = False, **outputs: Any) -> dict[str, Any]:
    """Run every cell, ``jobs`` experiments at a time, then collect and write the bands."""
    wanted = cells(seeds, kernel_paths)
    if not collect_only:
        failed = run_cells(repo, wanted, jobs)
        if failed:
            log.warning("cells that failed: %s; collecting the others", failed)
    runs = read_experiments(repo, wanted)
    if len(runs) < len(wanted):
        log.warning("%d of %d cells have results", len(runs), len(wanted))
    return write_outputs(repo, runs, **outputs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--kernel-paths", nargs="+", default=list(KERNEL_PATHS))
    ap.add_argument("--jobs", type=int, default=1, help="experiments at a time (default 1: a 2-core machine)")
    ap.add_argument("--out", default="metrics/bands.json")
    ap.add_argument("--plot", default="plots/bands.png")
    ap.add_argument("--no-track", dest="track", action="store_false", help="no MLflow runs")
    ap.add_argument("--collect-only", action="store_true", help="read the existing experiments, run nothing")
    args = ap.parse_args(argv)
    from genprm.logs import setup_logging

    setup_logging()
    try:
        result = sweep(args.repo, args.seeds, args.kernel_paths, args.jobs, collect_only=args.collect_only,
                       out=args.out, plot=args.plot, track=args.track)
    except (RuntimeError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    # criteria that fail are results (in bands.json), not errors; a cell without results is an error
    return 0 if len(result["runs"]) == len(args.seeds) * len(args.kernel_paths) else 1


if __name__ == "__main__":
    raise SystemExit(main())
