"""DVC stage ``critic``: critic refinement with the GenPRM against self-refinement.

Samples one step-forced policy solution per problem of an evaluation set, then runs ``turns``
revision turns in both arms (:mod:`genprm.evaluation.refinement`): the GenPRM flags the first
step it scores below the threshold and the policy revises from there, or the policy revises
without a critic::

    data/eval/critic.jsonl      the final solutions of both arms
    metrics/critic.json         {"accuracy": {"critic": [...], "self": [...]}, "revised": ..., "gain": ...,
                                 "forced_judgements": {turns, forced, share, by_reason}}
    plots/critic.png            accuracy per turn
    timings/critic.json         seconds (untracked)

Run: ``python stages/critic.py [--params params.yaml] [--model models/genprm] [--policy models/policy]``
"""

from __future__ import annotations

import logging
import time

from genprm.evaluation.plots import plot_refinement
from genprm.evaluation.refinement import RefinementOptions, refine
from genprm.logs import setup_logging, write_report
from genprm.records import write_records
from genprm.sampling import sample_solutions
from genprm.sandbox import Sandbox
from genprm.verifier import GenPRMVerifier
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path
from eval_args import eval_problems, parse

log = logging.getLogger("stages.critic")


def main(argv: list[str] | None = None) -> int:
    args, cfg, sampling = parse(argv, __doc__, "critic")
    setup_logging()
    start = time.perf_counter()
    problems = eval_problems(args, cfg)
    temperature = sampling.temperature if cfg.temperature is None else cfg.temperature
    opts = RefinementOptions(turns=cfg.turns, mode=cfg.mode, threshold=cfg.threshold, temperature=temperature,
                             top_p=sampling.top_p, max_tokens=sampling.max_tokens, seed=cfg.seed,
                             prompt=sampling.prompt)
    policy = cfg.policy_engine.create(args.policy)
    gen = cfg.verifier.engine.create(args.model)
    try:
        first = sample_solutions(policy, problems, n=1, temperature=temperature, top_p=sampling.top_p,
                                 top_k=sampling.top_k, max_tokens=sampling.max_tokens, seed=cfg.seed,
                                 prompt=sampling.prompt)
        with Sandbox() as sandbox:
            verifier = GenPRMVerifier(gen, sandbox, cfg.verifier.options(cfg.threshold))
            report = refine(policy, verifier, problems, first, opts)
    finally:
        gen.close()
        policy.close()
    final = report.accuracy
    metrics = {
        "problems": len(problems),
        "mode": cfg.mode,
        "accuracy": final,
        "revised": report.revised,
        "gain": {arm: round(acc[-1] - acc[0], 2) for arm, acc in final.items()},
        "critic_minus_self": round(final["critic"][-1] - final["self"][-1], 2),
        "forced_judgements": report.forced,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_records(args.out, [s.model_copy(update={"metadata": {**s.metadata, "arm": arm}})
                             for arm in ("critic", "self") for s in report.final[arm]])
    _, timings = write_report(metrics, args.metrics, args.timings)
    plot_refinement(final, args.plot, title=f"Critic refinement ({cfg.mode}, {len(problems)} problems)")
    log.info("accuracy per turn: critic %s, self %s", final["critic"], final["self"])
    log_stage_run("critic", {"critic": cfg.model_dump(), "sampling": sampling.model_dump()}, [args.metrics],
                  [args.plot], inputs=[args.model, args.policy], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
