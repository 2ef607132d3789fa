"""What the ``best_of_n`` and ``critic`` stages share: their command line, their section, their problems.

Both sample the policy on a prepared evaluation set and score with the GenPRM, so both take
``--model`` (the GenPRM), ``--policy``, ``--problems``, their three outputs and ``--timings``.
"""

from __future__ import annotations

import argparse

from genprm.logs import timings_path
from genprm.params import load_params
from genprm.records import Problem, read_records


def parse(argv: list[str] | None, doc: str | None, stage: str):
    """``(args, section, sampling)`` for ``stage`` (``best_of_n`` or ``critic``) of the params file."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/genprm", help="GenPRM folder (verifier.engine.settings.model wins)")
    ap.add_argument("--policy", default="models/policy", help="policy folder (policy_engine.settings.model wins)")
    ap.add_argument("--problems", default=None, help="default: data/prepared/eval/<eval_set>.jsonl")
    ap.add_argument("--out", default=f"data/eval/{stage}.jsonl")
    ap.add_argument("--metrics", default=f"metrics/{stage}.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    ap.add_argument("--plot", default=f"plots/{stage}.png")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path(stage, args.metrics)
    params = load_params(args.params)
    cfg = getattr(params, stage)
    if cfg is None:
        raise SystemExit(f"{args.params}: no {stage} section")
    return args, cfg, params.sampling


def eval_problems(args: argparse.Namespace, cfg) -> list[Problem]:
    """The first ``cfg.n_problems`` problems of ``--problems`` or the prepared ``cfg.eval_set``."""
    return read_records(args.problems or f"data/prepared/eval/{cfg.eval_set}.jsonl", Problem)[: cfg.n_problems]
