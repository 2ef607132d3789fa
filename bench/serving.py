"""Benchmark the served GenPRM verifier: errors and latency of ``mlflow models serve`` under load.

Without ``--url`` it logs the ``world-teacher`` verifier model (no model files; verdicts from code
run in the real sandbox) into a temporary sqlite store, registers it as ``genprm@champion`` and
starts ``mlflow models serve -m models:/genprm@champion --env-manager local`` on 127.0.0.1. It then
sends ``--requests`` POST ``/invocations`` (``dataframe_records``, ``--records`` world solutions
each: correct ones, arithmetic slips, copy slips) from ``--concurrency`` threads and reports:

* ``errors``: transport failures, non-200 answers and malformed answers (must be 0);
* ``mismatches``: answers whose ``first_error`` differs from the world's exact checker (0 for the
  world-teacher model; informational with ``--url`` pointing at another model);
* latency per request (p50 / p95 / mean / max, ms), requests/s, records/s, server start time.

Run::

    PYTHONPATH=src python bench/serving.py                       # writes bench/results/serving.json
    PYTHONPATH=src python bench/serving.py --url http://127.0.0.1:5001 --out /tmp/serving.json

Exits 1 when ``errors`` > 0 (or, with its own world-teacher server, when ``mismatches`` > 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from genprm.logs import setup_logging
from genprm.records import write_json
from genprm.world.checker import check_solution
from genprm.world.policy import corrupt_steps
from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps

log = logging.getLogger("bench.serving")


def make_payloads(n_requests: int, records: int, seed: int) -> list[tuple[dict, list[int]]]:
    """``n_requests`` bodies of ``records`` world solutions each, with the checker's first errors."""
    rng = random.Random(seed)
    problems = generate_problems(n_requests * records, seed, WorldConfig(min_ops=1, max_ops=4, max_value=30, max_multiplicand=9))
    out = []
    for i in range(n_requests):
        recs, truth = [], []
        for j, p in enumerate(problems[i * records : (i + 1) * records]):
            chain = parse_problem(p.problem)
            kind = ("correct", "arithmetic", "copy")[(i + j) % 3]
            steps = reference_steps(chain) if kind == "correct" else corrupt_steps(chain, rng, kind)
            recs.append({"problem": p.problem, "steps": steps})
            truth.append(check_solution(p.problem, steps).first_error)
        out.append(({"dataframe_records": recs}, truth))
    return out


def _ms_stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    if len(ms) < 2:
        ms = ms * 2 or [0.0, 0.0]
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "mean": round(statistics.fmean(ms), 2),
            "min": round(ms[0], 2), "max": round(ms[-1], 2)}


def run_load(url: str, payloads: list[tuple[dict, list[int]]], concurrency: int, timeout_s: float) -> dict[str, Any]:
    """Send every payload (``concurrency`` at a time); latencies, errors and checker mismatches."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=timeout_s)
            with lock:
                clients.append(local.client)
        return local.client

    def one(item: tuple[dict, list[int]]) -> tuple[float, str | None, int]:
        body, truth = item
        t0 = time.perf_counter()
        try:
            r = client().post(url + "/invocations", json=body)
        except httpx.HTTPError as exc:
            return time.perf_counter() - t0, f"{type(exc).__name__}: {exc}", 0
        elapsed = time.perf_counter() - t0
        if r.status_code != 200:
            return elapsed, f"HTTP {r.status_code}: {r.text[:300]}", 0
        try:
            preds = r.json()["predictions"]
            ok = len(preds) == len(truth) and all(
                len(p["rewards"]) == len(rec["steps"]) == len(p["rationales"])
                for p, rec in zip(preds, body["dataframe_records"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            return elapsed, f"malformed answer: {exc}", 0
        if not ok:
            return elapsed, "malformed answer: record or step counts differ", 0
        return elapsed, None, sum(p["first_error"] != t for p, t in zip(preds, truth))

    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, payloads))
    finally:
        for c in clients:
            c.close()
    wall = time.perf_counter() - t0
    errors = [e for _, e, _ in results if e is not None]
    n_records = sum(len(b["dataframe_records"]) for b, _ in payloads)
    return {
        "requests": len(payloads),
        "errors": len(errors),
        "error_samples": errors[:3],
        "mismatches": sum(m for _, _, m in results),
        "latency_ms": _ms_stats([s for s, _, _ in results]),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(payloads) / wall, 2),
        "records_per_s": round(n_records / wall, 2),
        "steps_per_s": round(sum(len(r["steps"]) for b, _ in payloads for r in b["dataframe_records"]) / wall, 2),
    }


def start_world_server(stack: ExitStack, paths: int, pool_size: int, server_log: str | None) -> tuple[str, float]:
    """Log + register the world-teacher model in a temporary store and serve it; (url, start seconds)."""
    from genprm.serving import ModelServer, log_verifier_model

    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serving-")))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # this script's own store; the server gets it too
    log_verifier_model("genprm", "world-teacher", {}, options={"n_paths": paths}, sandbox={"pool_size": pool_size},
                       registered_model_name="genprm", alias="champion", artifact_location=str(root / "artifacts"))
    server = ModelServer("models:/genprm@champion", tracking_uri=uri, log_path=server_log or root / "server.log")
    stack.enter_context(server)
    return server.url, float(server.ready_s or 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running scoring server (default: start one on the world-teacher model)")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--records", type=int, default=2, help="solutions per request")
    ap.add_argument("--paths", type=int, default=1, help="verification paths (n_paths) of the started model")
    ap.add_argument("--pool-size", type=int, default=8, help="pre-forked sandbox sessions of the started model")
    ap.add_argument("--warmup", type=int, default=2, help="requests sent first and not counted")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-log", default=None, help="keep the started server's log here")
    ap.add_argument("--out", default="bench/results/serving.json")
    args = ap.parse_args(argv)
    setup_logging()
    logging.getLogger("httpx").setLevel("WARNING")

    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_at_start": os.getloadavg()},
    }
    payloads = make_payloads(args.requests + args.warmup, args.records, args.seed)
    with ExitStack() as stack:
        if args.url:
            url, own = args.url.rstrip("/"), False
            report["server"] = {"url": url}
        else:
            url, start_s = start_world_server(stack, args.paths, args.pool_size, args.server_log)
            own = True
            report["server"] = {"backend": "world-teacher", "n_paths": args.paths, "sandbox_pool_size": args.pool_size,
                                "start_s": start_s,
                                "command": "mlflow models serve -m models:/genprm@champion --env-manager local"}
        if args.warmup:
            warm = run_load(url, payloads[: args.warmup], 1, args.timeout)
            report["warmup_errors"] = warm["errors"]
        report.update(run_load(url, payloads[args.warmup :], args.concurrency, args.timeout))
    report["machine"]["loadavg_at_end"] = os.getloadavg()  # other work on the host skews every number
    write_json(args.out, report)
    log.info("%s", json.dumps(report, indent=1))
    failed = report["errors"] > 0 or (own and report["mismatches"] > 0)
    if failed:
        log.error("serving bench failed: %d errors, %d mismatches", report["errors"], report["mismatches"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
