"""Benchmark: throughput of the synthesis stage on the embedded default (world teacher, per-step).

Builds ``--problems`` world problems, each with its reference solution and one copy whose step
``i % n_steps`` has a wrong result (RPE labels: 1 before that step, 0 from it on), writes them as
the stage's inputs, runs :func:`genprm.rationale.runner.synthesis_stage` with the default
:class:`~genprm.rationale.config.SynthesisConfig` (once per format) and reports solutions per
second and the time the stage would need to keep 500 solutions at the measured retention.

Run::

    PYTHONPATH=src python bench/synthesis.py --problems 50      # 100 solutions

Writes ``bench/results/synthesis.json``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from genprm.logs import setup_logging
from genprm.rationale.config import SynthesisConfig
from genprm.rationale.runner import synthesis_stage
from genprm.records import Solution, StepValues, write_json, write_records
from genprm.world import generate_problems
from genprm.world.problems import parse_problem, reference_steps

log = logging.getLogger("bench.synthesis")

TARGET_KEPT = 500


def _corrupt(steps: list[str], j: int) -> list[str]:
    out = list(steps)
    head, _, tail = out[j].partition(" = ")
    value, dot, _ = tail.partition(".")
    wrong = int(value) + 1
    out[j] = f"{head} = {wrong}" + (f". The answer is {wrong}." if dot else "")
    return out


def write_inputs(folder: Path, n_problems: int, seed: int) -> tuple[Path, Path, Path]:
    solutions, values = [], []
    for i, p in enumerate(generate_problems(n_problems, seed, prefix="bench")):
        steps = reference_steps(parse_problem(p.problem))
        j = i % len(steps)
        for kind, sol_steps, labels in (("ref", steps, [1] * len(steps)),
                                        ("bad", _corrupt(steps, j), [1] * j + [0] * (len(steps) - j))):
            sid = f"{p.id}/{kind}"
            solutions.append(Solution(id=sid, problem_id=p.id, problem=p.problem, steps=sol_steps,
                                      generator="bench", correct=kind == "ref"))
            values.append(StepValues(solution_id=sid, problem_id=p.id, mc_first=0.5, mc=[float(x) for x in labels],
                                     k=[8] * len(labels), labels={"rpe": labels}))
    evals = generate_problems(20, seed + 1000, prefix="bench-eval")
    paths = folder / "solutions.jsonl", folder / "values.jsonl", folder / "eval.jsonl"
    write_records(paths[0], solutions)
    write_records(paths[1], values)
    write_records(paths[2], evals)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", default="bench/results/synthesis.json")
    args = ap.parse_args(argv)
    setup_logging()
    results = {"problems": args.problems, "solutions": 2 * args.problems, "target_kept": TARGET_KEPT, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sols, vals, ev = write_inputs(Path(tmp), args.problems, args.seed)
        for fmt in ("per_step", "whole_solution"):
            cfg = SynthesisConfig(format=fmt)
            t0 = time.perf_counter()
            m = synthesis_stage(cfg, sols, vals, [ev], Path(tmp) / fmt)
            wall = time.perf_counter() - t0
            rate = m["reviewed"] / m["review_seconds"]
            retention = m["consensus"]["retention"]
            results["runs"][fmt] = {
                "wall_seconds": round(wall, 3),
                "review_seconds": m["review_seconds"],
                "sandbox_start_seconds": m["sandbox_start_seconds"],
                "solutions_per_second": round(rate, 2),
                "retention": retention,
                "kept": m["consensus"]["kept"],
                "code_blocks": m["code_blocks"],
                "scheduler": m["scheduler"],
                "seconds_to_keep_500": round(TARGET_KEPT / max(retention, 1e-9) / rate + wall - m["review_seconds"], 1),
            }
            log.info("%s: %.1f solutions/s, retention %.2f", fmt, rate, retention)
    write_json(args.out, results)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
