"""DVC stage ``world_bench``: the world's ProcessBench, from the policy's own solutions.

Samples the world policy on the held-out world problems (``sampling`` params), labels every
solution with the exact checker and keeps a balanced set in ProcessBench's own format (one
JSON array per split, fields ``id, generator, problem, steps, final_answer_correct, label``,
and ``error_kind``, the checker's kind of the first error),
so the evaluation code reads it exactly like the real benchmark. Writes::

    data/world_processbench/world.json
    metrics/world_bench.json
    timings/world_bench.json          sampling seconds (untracked)

Run: ``python stages/world_bench.py [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import json
import logging

from genprm.params import load_params
from genprm.logs import setup_logging, timed, timings_path, write_report
from genprm.records import Problem, atomic_write_text, read_records
from genprm.sampling import sample_solutions
from genprm.world.benchmark import build_benchmark
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.world_bench")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--problems", default="data/prepared/eval/world_test.jsonl")
    ap.add_argument("--policy", default="models/policy")
    ap.add_argument("--out", default="data/world_processbench/world.json")
    ap.add_argument("--metrics", default="metrics/world_bench.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("world_bench", args.metrics)
    setup_logging()
    params = load_params(args.params)
    cfg, sampling = params.world_bench, params.sampling
    problems = read_records(args.problems, Problem)
    with timed("world_bench sampling", log) as t:
        gen = cfg.engine.create(args.policy)
        sols = sample_solutions(
            gen, problems, n=cfg.samples_per_problem, temperature=sampling.temperature, top_p=sampling.top_p,
            top_k=sampling.top_k, max_tokens=sampling.max_tokens, seed=cfg.seed, prompt=sampling.prompt,
        )
        gen.close()
    samples, stats = build_benchmark(sols, cfg.size, seed=cfg.seed, split="world")
    rows = [s.model_dump(exclude={"split"}) for s in samples]
    atomic_write_text(args.out, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    _, timings = write_report(dict(stats, sampled=len(sols), sampling_seconds=t["seconds"]), args.metrics, args.timings)
    log.info("world ProcessBench: %d samples (%d erroneous) from %d solutions", len(rows), stats["erroneous"], len(sols))
    log_stage_run("world_bench", {"world_bench": cfg.model_dump(), "sampling": sampling.model_dump()}, [args.metrics],
                  inputs=[args.problems, args.policy], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
