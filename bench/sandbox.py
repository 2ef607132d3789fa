"""Benchmark the sandbox against in-process ``exec`` and a fresh ``python -c`` per snippet.

Usage::

    PYTHONPATH=src python bench/sandbox.py [--out bench/results/sandbox.json] [--quick]

Measures (trivial snippets unless noted):

* ``inprocess_exec``: the released GenPRM way (exec + redirect_stdout + SIGALRM), no isolation.
* ``python_c``: a fresh ``python -c`` per snippet (no state, no isolation).
* ``persistent_session``: one isolated session, many snippets (target: median <= 1 ms).
* ``fresh_session``: open a session from the pool, run one snippet, close (target: median <= 25 ms);
  50 ms pause between sessions (generation time in a real run); ``_back_to_back``: no pause,
  so the pool is empty and every session pays the fork + isolation cost.
* ``throughput``: client threads running sessions of 5 snippets each (target: >= 250 snippets/s
  on 2 cores).
Writes one JSON object to ``--out`` and logs a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from genprm.sandbox import Sandbox, SandboxConfig, Status

logger = logging.getLogger("bench.sandbox")
TRIVIAL = "x = 1 + 1"


def _stats(samples_s: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples_s)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 4),
            "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 4), "mean_ms": round(statistics.fmean(ms), 4)}


def bench_inprocess(n: int) -> dict:
    namespace: dict = {}

    def handler(signum, frame):
        raise TimeoutError("Code execution timed out")

    signal.signal(signal.SIGALRM, handler)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            signal.alarm(5)
            exec(TRIVIAL, namespace)
            signal.alarm(0)
        buf.getvalue().strip()
        samples.append(time.perf_counter() - t0)
    return _stats(samples)


def bench_python_c(n: int) -> dict:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", TRIVIAL], check=True, capture_output=True)
        samples.append(time.perf_counter() - t0)
    return _stats(samples)


def bench_persistent(sb: Sandbox, n: int) -> dict:
    samples = []
    with sb.session() as s:
        s.run(TRIVIAL)  # warm
        for _ in range(n):
            t0 = time.perf_counter()
            r = s.run(TRIVIAL)
            samples.append(time.perf_counter() - t0)
            assert r.status is Status.OK
    return _stats(samples)


def bench_fresh(sb: Sandbox, n: int, pause_s: float) -> dict:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        with sb.session() as s:
            r = s.run(TRIVIAL)
        samples.append(time.perf_counter() - t0)
        assert r.status is Status.OK
        time.sleep(pause_s)  # let the server refill its pool, as between solutions in a real run
    return _stats(samples)


def bench_throughput(sb: Sandbox, threads: int, seconds: float, per_session: int = 5) -> dict:
    stop = time.monotonic() + seconds
    counts = [0] * threads
    failures = [0] * threads

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            with sb.session() as s:
                for _ in range(per_session):
                    r = s.run(TRIVIAL)
                    counts[i] += 1
                    failures[i] += r.status is not Status.OK

    t0 = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - t0
    total = sum(counts)
    return {"threads": threads, "snippets_per_session": per_session, "seconds": round(elapsed, 3),
            "snippets": total, "failures": sum(failures), "snippets_per_s": round(total / elapsed, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/sandbox.json")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    k = 0.2 if args.quick else 1.0
    results: dict = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                                 "python": platform.python_version(), "euid": os.geteuid(),
                                 "loadavg_at_start": os.getloadavg()},
                     "snippet": TRIVIAL}
    results["inprocess_exec"] = bench_inprocess(int(2000 * k))
    results["python_c"] = bench_python_c(int(30 * k) or 5)
    t0 = time.perf_counter()
    with Sandbox(SandboxConfig(pool_size=4)) as sb:
        results["server_start_s"] = round(time.perf_counter() - t0, 3)
        results["isolation_level"] = sb.report.level.name.lower()
        results["persistent_session"] = bench_persistent(sb, int(2000 * k))
        results["fresh_session"] = bench_fresh(sb, int(200 * k), pause_s=0.05)
        results["fresh_session_back_to_back"] = bench_fresh(sb, int(200 * k), pause_s=0.0)
        results["throughput"] = [bench_throughput(sb, t, 5.0 * k) for t in (1, 2, 4)]
    results["machine"]["loadavg_at_end"] = os.getloadavg()  # other work on the host skews every number
    results["targets"] = {
        "persistent_median_le_1ms": results["persistent_session"]["median_ms"] <= 1.0,
        "fresh_median_le_25ms": results["fresh_session"]["median_ms"] <= 25.0,
        "throughput_ge_250_per_s": max(t["snippets_per_s"] for t in results["throughput"]) >= 250,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    logger.info(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
