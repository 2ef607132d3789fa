"""Benchmark: adaptive Monte-Carlo sampling vs the paper's fixed dynamic K, on world problems.

Rolls out a world policy on ``--problems`` world problems, then estimates MC values of the
kept solutions with the fixed dynamic K (K = 128 / 64 / 32 on MC(s_1)) and with each
adaptive variant (chunked sampling that stops once the RPE label at epsilon is settled):

- ``paired_*``: the stopping rule replayed on the fixed run's own completions
  (:func:`genprm.labeling.adaptive.replay_adaptive`): the rule's effect alone;
- ``fresh_*``: a real adaptive run with its own samples (some variants only);
- ``fixed_dynamic_k_seed1``: the fixed scheme again with another seed: the noise floor of
  label agreement that any fresh sampling faces.

Reports per variant: completions, reduction vs fixed, share of RPE labels identical to the
fixed run's (and of hard / difference labels), agreement with the world's exact checker.

Run (about 10 minutes on 2 cores at 40 problems)::

    PYTHONPATH=src python bench/labeling.py --policy models/policy --problems 60
    PYTHONPATH=src python bench/labeling.py --policy-steps 1200   # trains a policy first

Writes ``bench/results/labeling.json``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from genprm.engine import create_generator
from genprm.labeling.config import DEFAULT_K_THRESHOLDS, AdaptiveConfig
from genprm.labeling.adaptive import replay_adaptive
from genprm.labeling.labels import apply_labels, quality_metrics
from genprm.labeling.montecarlo import estimate_values
from genprm.labeling.rollout import run_rollouts
from genprm.logs import setup_logging
from genprm.records import write_json
from genprm.world import generate_problems

log = logging.getLogger("bench.labeling")

VARIANTS = {
    f"adaptive_{bound}_{conf}_chunk8": AdaptiveConfig(enabled=True, chunk=8, confidence=conf, bound=bound)
    for bound, conf in [("predictive", 0.99), ("predictive", 0.95), ("predictive", 0.9), ("wilson", 0.99), ("wilson", 0.95)]
}
VARIANTS["adaptive_exact_only_chunk8"] = AdaptiveConfig(enabled=True, chunk=8, confidence=None)
FRESH = ("adaptive_predictive_0.99_chunk8", "adaptive_predictive_0.95_chunk8", "adaptive_exact_only_chunk8")
"""Variants also run with fresh samples (the others only replayed on the fixed run's samples)."""


def _agreement(a, b, name: str) -> float:
    same = total = 0
    for x, y in zip(a, b):
        assert x.solution_id == y.solution_id
        for p, q in zip(x.labels[name], y.labels[name]):
            same += p == q
            total += 1
    return round(100.0 * same / max(1, total), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", help="world policy folder (default: train one with --policy-steps)")
    ap.add_argument("--policy-steps", type=int, default=1200)
    ap.add_argument("--problems", type=int, default=60)
    ap.add_argument("--problem-seed", type=int, default=11)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/labeling.json")
    args = ap.parse_args(argv)
    setup_logging()
    for noisy in ("genprm.labeling.montecarlo", "genprm.labeling.rollout", "httpx"):
        logging.getLogger(noisy).setLevel("WARNING")

    policy = args.policy
    report: dict = {"config": vars(args).copy(), "k_thresholds": DEFAULT_K_THRESHOLDS}
    if policy is None:
        from genprm.world.policy import PolicyConfig, bootstrap_policy

        policy = tempfile.mkdtemp(prefix="bench-policy-")
        report["policy_training"] = bootstrap_policy(generate_problems(2000, 1), policy, PolicyConfig(steps=args.policy_steps))
        report["policy_training"].pop("loss_curve", None)
    gen = create_generator("hf", model=policy, dtype="float32", batch_size=256, num_threads=args.threads)
    problems = generate_problems(args.problems, args.problem_seed)
    t0 = time.perf_counter()
    roll = run_rollouts(gen, problems, paths_per_round=8, max_paths=64, keep_correct=2, keep_incorrect=2,
                        temperature=1.0, max_tokens=args.max_tokens, seed=0)
    report["rollout"] = roll.stats
    log.info("rollout: %s (%.1f s)", roll.stats, time.perf_counter() - t0)
    common = dict(k_thresholds=DEFAULT_K_THRESHOLDS, temperature=0.7, max_tokens=args.max_tokens)

    def run(name: str, seed: int, adaptive=None, outcomes=None):
        t = time.perf_counter()
        values, stats = estimate_values(gen, problems, roll.solutions, seed=seed, adaptive=adaptive,
                                        outcomes=outcomes, **common)
        values = apply_labels(values, epsilon=0.8, difference_threshold=-0.3)
        log.info("%s: %d completions in %.1f s", name, stats["completions"], time.perf_counter() - t)
        return values, stats

    outcomes: dict = {}
    fixed, fixed_stats = run("fixed", 0, outcomes=outcomes)
    results = {"fixed_dynamic_k": {"completions": fixed_stats["completions"], "seconds": fixed_stats["seconds"],
                                   "engine_calls": fixed_stats["engine_calls"],
                                   "checker_rpe@0.8": quality_metrics(fixed, roll.solutions)["rpe@0.8"]}}
    other, other_stats = run("fixed (seed 1)", 1)
    results["fixed_dynamic_k_seed1"] = {
        "completions": other_stats["completions"],
        "rpe_identical_pct": _agreement(fixed, other, "rpe"),
        "hard_identical_pct": _agreement(fixed, other, "hard"),
        "difference_identical_pct": _agreement(fixed, other, "difference"),
    }
    for name, cfg in VARIANTS.items():
        replayed, used = replay_adaptive(outcomes, roll.solutions, k_thresholds=DEFAULT_K_THRESHOLDS, chunk=cfg.chunk,
                                         confidence=cfg.confidence, epsilon=cfg.epsilon, bound=cfg.bound)
        replayed = apply_labels(replayed, epsilon=0.8, difference_threshold=-0.3)
        results[f"paired_{name}"] = {
            "completions": used,
            "reduction_x": round(fixed_stats["completions"] / max(1, used), 2),
            "rpe_identical_pct": _agreement(fixed, replayed, "rpe"),
            "hard_identical_pct": _agreement(fixed, replayed, "hard"),
            "difference_identical_pct": _agreement(fixed, replayed, "difference"),
        }
    for name, cfg in VARIANTS.items():
        if name not in FRESH:
            continue
        values, stats = run(name, 0, cfg)
        results[f"fresh_{name}"] = {
            "completions": stats["completions"],
            "reduction_x": round(fixed_stats["completions"] / max(1, stats["completions"]), 2),
            "rpe_identical_pct": _agreement(fixed, values, "rpe"),
            "hard_identical_pct": _agreement(fixed, values, "hard"),
            "difference_identical_pct": _agreement(fixed, values, "difference"),
            "engine_calls": stats["engine_calls"],
            "seconds": stats["seconds"],
            "checker_rpe@0.8": quality_metrics(values, roll.solutions)["rpe@0.8"],
        }
    report["results"] = results
    report["solutions"] = len(roll.solutions)
    report["steps"] = sum(len(s.steps) for s in roll.solutions)
    report["steps_sampled_fixed"] = fixed_stats["steps_sampled"]
    report["machine"] = "CPU, hf backend, 1 torch thread"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    for name, r in results.items():
        log.info("%-36s %s", name, {k: v for k, v in r.items() if not k.startswith("checker")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
