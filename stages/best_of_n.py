"""DVC stage ``best_of_n``: N policy samples per problem, selected with the GenPRM's rewards.

Samples ``n_max`` step-forced solutions per problem of an evaluation set with the policy,
scores every step with the GenPRM verifier, and compares PRM-Last / PRM-Min / PRM-Avg
selection, majority voting, PRM-weighted voting and pass@k for N = 1, 2, 4 ... n_max
(:mod:`genprm.evaluation.best_of_n`)::

    data/eval/best_of_n.jsonl      the scored solutions (step_rewards and step_forced in metadata)
    metrics/best_of_n.json         {"curves": {method: {N: acc}}, "at_n_max": {...}, "forced_judgements": {...}, ...}
    plots/best_of_n.png            accuracy against N
    timings/best_of_n.json         sampling and total seconds (untracked)

Run: ``python stages/best_of_n.py [--params params.yaml] [--model models/genprm] [--policy models/policy]``
"""

from __future__ import annotations

import logging
import time

from genprm.evaluation.best_of_n import Candidate, best_of_n_curves
from genprm.evaluation.plots import plot_best_of_n
from genprm.logs import setup_logging, write_report
from genprm.records import write_records
from genprm.sampling import sample_solutions
from genprm.sandbox import Sandbox
from genprm.verifier import GenPRMVerifier, forced_summary
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path
from eval_args import eval_problems, parse

log = logging.getLogger("stages.best_of_n")


def main(argv: list[str] | None = None) -> int:
    args, cfg, sampling = parse(argv, __doc__, "best_of_n")
    setup_logging()
    start = time.perf_counter()
    problems = eval_problems(args, cfg)

    policy = cfg.policy_engine.create(args.policy)
    try:
        solutions = sample_solutions(
            policy, problems, n=cfg.n_max, temperature=sampling.temperature if cfg.temperature is None else cfg.temperature,
            top_p=sampling.top_p, top_k=sampling.top_k, max_tokens=sampling.max_tokens, seed=cfg.seed,
            prompt=sampling.prompt,
        )
    finally:
        policy.close()
    sampled = time.perf_counter() - start
    scorable = [s for s in solutions if any(step.strip() for step in s.steps)]
    log.info("%d solutions sampled in %.1f s (%d without a step: reward 0)", len(solutions), sampled,
             len(solutions) - len(scorable))

    gen = cfg.verifier.engine.create(args.model)
    try:
        with Sandbox() as sandbox:
            results = GenPRMVerifier(gen, sandbox, cfg.verifier.options()).verify([(s.problem, s.steps) for s in scorable])
    finally:
        gen.close()
    rewards = {s.id: r.rewards for s, r in zip(scorable, results)}
    forced = {s.id: r.forced_shares for s, r in zip(scorable, results)}
    for s in solutions:
        s.metadata["step_rewards"] = rewards.get(s.id, [0.0])
        s.metadata["step_forced"] = forced.get(s.id, [])
    by_problem: dict[str, list[Candidate]] = {}
    for s in solutions:
        by_problem.setdefault(s.problem_id, []).append(
            Candidate(answer=s.final_answer, correct=bool(s.correct), step_rewards=s.metadata["step_rewards"])
        )
    curves = best_of_n_curves(list(by_problem.values()), n_max=cfg.n_max, draws=cfg.draws, seed=cfg.seed,
                              vote_score=cfg.vote_score, tie_margin=cfg.tie_margin)
    top = str(cfg.n_max)
    metrics = {
        "problems": len(problems),
        "solutions": len(solutions),
        "pass@1": round(100.0 * sum(bool(s.correct) for s in solutions) / len(solutions), 2),
        "curves": curves,
        "at_n_max": {m: c[top] for m, c in curves.items()},
        "prm_min_minus_majority": round(curves["prm_min"][top] - curves["majority"][top], 2),
        "forced_judgements": forced_summary(results),
        "sampling_seconds": round(sampled, 2),
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_records(args.out, solutions)
    _, timings = write_report(metrics, args.metrics, args.timings)
    plot_best_of_n(curves, args.plot, title=f"Best-of-N ({len(problems)} problems)")
    log.info("Best-of-%d: %s", cfg.n_max, ", ".join(f"{m} {v:.1f}" for m, v in metrics["at_n_max"].items()))
    log_stage_run("best_of_n", {"best_of_n": cfg.model_dump(), "sampling": sampling.model_dump()}, [args.metrics],
                  [args.plot], inputs=[args.model, args.policy], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
