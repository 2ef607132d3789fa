"""DVC stage ``evaluate_processbench``: score ProcessBench with the GenPRM and compute the official F1.

Reads ``evaluate_processbench.data`` (the world's benchmark by default; the real ProcessBench
folder or Hub id in other profiles) and writes Pass@1 (path 0) and Maj@N (mean of N paths)::

    data/eval/processbench_predictions.jsonl   id, split, prediction, step_rewards (Maj@N), step_forced
    metrics/processbench.json                  {"pass@1": {...}, "maj@N": {...}}; each
                                               with "forced_judgements" (turns, forced, share, by_reason)
    plots/processbench_f1.png                  F1 per split (Maj@N)
    plots/processbench_rewards.png             rewards of correct and erroneous steps
    timings/evaluate_processbench.json         seconds (untracked)

Run: ``python stages/evaluate_processbench.py [--params params.yaml] [--model models/genprm]``
"""

from __future__ import annotations

import argparse
import logging
import time

from genprm.data import load_processbench
from genprm.evaluation.plots import plot_processbench_f1, plot_reward_histogram
from genprm.evaluation.processbench import predict_first_error, processbench_metrics, write_predictions
from genprm.logs import setup_logging, timings_path, write_report
from genprm.params import load_params
from genprm.sandbox import Sandbox
from genprm.verifier import GenPRMVerifier, forced_summary
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.evaluate_processbench")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/genprm", help="GenPRM folder (engine.settings.model wins)")
    ap.add_argument("--data", default=None, help="override evaluate_processbench.data")
    ap.add_argument("--predictions", default="data/eval/processbench_predictions.jsonl")
    ap.add_argument("--metrics", default="metrics/processbench.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    ap.add_argument("--plot", default="plots/processbench_f1.png")
    ap.add_argument("--rewards-plot", default="plots/processbench_rewards.png")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("evaluate_processbench", args.metrics)
    setup_logging()
    cfg = load_params(args.params).evaluate_processbench
    if cfg is None:
        raise SystemExit(f"{args.params}: no evaluate_processbench section")
    start = time.perf_counter()
    v = cfg.verifier
    samples = load_processbench(args.data or cfg.data, splits=cfg.splits, limit=cfg.limit)
    log.info("%d ProcessBench samples from %s", len(samples), args.data or cfg.data)
    gen = v.engine.create(args.model)
    try:
        with Sandbox() as sandbox:
            results = GenPRMVerifier(gen, sandbox, v.options(cfg.threshold)).verify([(s.problem, s.steps) for s in samples])
    finally:
        gen.close()
    maj = [r.rewards for r in results]
    pass1 = [[st.paths[0].reward for st in r.steps] for r in results]
    maj_key = f"maj@{v.n_paths}"
    metrics = {
        "pass@1": {**processbench_metrics(samples, [predict_first_error(r, cfg.threshold) for r in pass1]),
                   "forced_judgements": forced_summary(results, paths=1)},
        maj_key: {**processbench_metrics(samples, [predict_first_error(r, cfg.threshold) for r in maj]),
                  "forced_judgements": forced_summary(results)},
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_predictions(args.predictions, samples, [predict_first_error(r, cfg.threshold) for r in maj], maj,
                      [r.forced_shares for r in results])
    _, timings = write_report(metrics, args.metrics, args.timings)
    plot_processbench_f1(metrics[maj_key], args.plot, title=f"ProcessBench F1 (Maj@{v.n_paths})")
    good, bad = [], []
    for s, rewards in zip(samples, maj):
        last = len(rewards) if s.label == -1 else s.label + 1  # steps after the first error are unlabelled
        for i, r in enumerate(rewards[:last]):
            (bad if i == s.label else good).append(r)
    plot_reward_histogram(good, bad, args.rewards_plot, title=f"GenPRM step rewards (Maj@{v.n_paths})")
    for name in ("pass@1", maj_key):
        kinds = metrics[name].get("error_acc_by_kind", {})
        log.info("%s average F1 %.1f%s", name, metrics[name]["average_f1"],
                 "".join(f"; {k} errors found {v['error_acc']:.0f}% (n={v['n']})" for k, v in kinds.items()))
    log_stage_run("evaluate_processbench", {"evaluate_processbench": cfg.model_dump()}, [args.metrics],
                  [args.plot, args.rewards_plot], inputs=[args.model, args.data or cfg.data], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
