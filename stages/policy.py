"""DVC stage ``policy``: bootstrap the embedded world's policy and measure it.

Trains the world's tokenizer and a tiny Llama from scratch on the prepared training problems
(``policy`` params), saves a standard model folder, then samples it through the configured
engine at the rollout temperature on the held-out world problems and judges every solution
with the exact checker. Writes::

    models/policy/           config.json, model.safetensors, tokenizer files
    models/genprm-base/      the model at the end of the first learning-rate cycle (``policy.base_steps``): the
                             GenPRM's base (``train.base_model``); an empty folder without ``base_steps``
    metrics/policy.json      accuracy, first-error mix, loss
    timings/policy.json      tokenizer, training and sampling seconds (untracked)
    plots/policy_loss.json   the training loss curve (DVC plot)

Run: ``python stages/policy.py [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import logging

from genprm.params import load_params
from genprm.logs import setup_logging, timed, timings_path, write_report
from genprm.records import Problem, read_records, replace_dir, write_json
from genprm.sampling import sample_solutions
from genprm.world.policy import bootstrap_policy, measure_policy
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.policy")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--train", default="data/prepared/train.jsonl")
    ap.add_argument("--eval", default="data/prepared/eval/world_test.jsonl")
    ap.add_argument("--out", default="models/policy")
    ap.add_argument("--base-out", default="models/genprm-base", help="the GenPRM's base (with policy.base_steps)")
    ap.add_argument("--metrics", default="metrics/policy.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    ap.add_argument("--plot", default="plots/policy_loss.json")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("policy", args.metrics)
    setup_logging()
    params = load_params(args.params)
    cfg = params.policy
    problems = read_records(args.train, Problem)
    with replace_dir(args.out) as tmp, replace_dir(args.base_out) as base_tmp:
        report = bootstrap_policy(problems, tmp, cfg, base_dir=base_tmp if cfg.base_steps else None)
    log.info("policy trained in %.1f s (%d steps), final loss %.4f", report["train_seconds"], cfg.steps, report["final_loss"])
    ev, sampling = params.policy_eval, params.sampling
    eval_problems = read_records(args.eval, Problem)[: ev.problems]
    with timed("policy sampling", log) as t:
        gen = ev.engine.create(args.out)
        sols = sample_solutions(
            gen, eval_problems, n=ev.samples, temperature=sampling.temperature, top_p=sampling.top_p,
            top_k=sampling.top_k, max_tokens=sampling.max_tokens, seed=cfg.seed, prompt=sampling.prompt,
        )
        gen.close()
    measured = measure_policy(sols)
    log.info("policy accuracy %.3f at T=%.2f, first errors %s", measured["accuracy"], params.sampling.temperature,
             measured["first_error_share"])
    curve = report.pop("loss_curve")
    _, timings = write_report({"train": report, "eval": measured, "sampling_seconds": t["seconds"]}, args.metrics,
                              args.timings)
    write_json(args.plot, [{"step": i * 50, "loss": v} for i, v in enumerate(curve)])
    log_stage_run("policy", {"policy": cfg.model_dump(), "policy_eval": ev.model_dump(), "sampling": sampling.model_dump()},
                  [args.metrics], [args.plot], inputs=[args.train, args.eval], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
