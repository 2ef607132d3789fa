"""DVC stage ``evaluate_processbench``: score ProcessBench with the PRM and compute the official F1.

Writes the predictions (Pass@1 from path 0 and Maj@N from the mean of N paths), the metrics of
both and the F1 bar plot::

    data/eval/processbench_predictions.jsonl   id, split, prediction, step_rewards (Maj@N)
    metrics/processbench.json                  {"pass@1": {...}, "maj@N": {...}}
    plots/processbench_f1.png

Run: ``python stages/evaluate_processbench.py --params params.yaml --model models/genprm --data DIR``
"""

from __future__ import annotations

import argparse
import logging

from genprm.data import load_processbench
from genprm.engine import create_generator
from genprm.evaluation.plots import plot_processbench_f1
from genprm.evaluation.processbench import predict_first_error, processbench_metrics, write_predictions
from genprm.logs import setup_logging
from genprm.params import load_params
from genprm.records import write_json
from genprm.sandbox import Sandbox
from genprm.verifier import GenPRMVerifier, VerifierOptions

log = logging.getLogger("stages.evaluate_processbench")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/genprm")
    ap.add_argument("--data", default="data/processbench", help="folder with <split>.json files")
    ap.add_argument("--predictions", default="data/eval/processbench_predictions.jsonl")
    ap.add_argument("--metrics", default="metrics/processbench.json")
    ap.add_argument("--plot", default="plots/processbench_f1.png")
    args = ap.parse_args(argv)
    setup_logging()
    cfg = load_params(args.params).evaluate_processbench
    if cfg is None:
        raise SystemExit(f"{args.params}: no evaluate_processbench section")
    v = cfg.verifier
    samples = load_processbench(args.data, splits=cfg.splits, limit=cfg.limit)
    gen = create_generator(v.engine.backend, **{"model": args.model, **v.engine.settings})
    opts = VerifierOptions(
        n_paths=v.n_paths, temperature=v.temperature, top_p=v.top_p, top_k=v.top_k, seed=v.seed,
        max_tokens=v.max_tokens, max_code_rounds=v.max_code_rounds, code_timeout_s=v.code_timeout_s,
        max_active=v.max_active, threshold=cfg.threshold,
    )
    with Sandbox() as sandbox:
        results = GenPRMVerifier(gen, sandbox, opts).verify([(s.problem, s.steps) for s in samples])
    gen.close()
    maj = [r.rewards for r in results]
    pass1 = [[st.paths[0].reward for st in r.steps] for r in results]
    metrics = {
        "pass@1": processbench_metrics(samples, [predict_first_error(r, cfg.threshold) for r in pass1]),
        f"maj@{v.n_paths}": processbench_metrics(samples, [predict_first_error(r, cfg.threshold) for r in maj]),
    }
    write_predictions(args.predictions, samples, [predict_first_error(r, cfg.threshold) for r in maj], maj)
    write_json(args.metrics, metrics)
    plot_processbench_f1(metrics[f"maj@{v.n_paths}"], args.plot, title=f"ProcessBench F1 (Maj@{v.n_paths})")
    for name, m in metrics.items():
        log.info("%s average F1 %.1f", name, m["average_f1"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
