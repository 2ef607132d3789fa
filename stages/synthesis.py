"""DVC stage ``synthesis``: teacher rationales with executed code, consensus filter, SFT set (part 4).

Reads the ``synthesis`` section of the params file, the rollout's solutions, their labelled step
values and the evaluation sets (for the gate's decontamination check); writes::

    data/sft/train.jsonl          SFTExample records in the GenPRM conversation format
    data/sft/rationales.jsonl     a Rationale for every reviewed solution
    metrics/synthesis.json        counts, drop reasons, retention per source, gate
    timings/synthesis.json        review, sandbox, generate and exec seconds, solutions/s (untracked)

When consensus keeps no example, or the SFT gate fails, the stage still writes
``rationales.jsonl`` and its metrics (with the consensus report and ``gate.failures``), then
fails (exit 1) with a message that says what to change; ``train.jsonl`` is not written (a failed
gate's examples go to ``train.gate-failed.jsonl`` for inspection).

Run: ``python stages/synthesis.py [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import glob
import logging

from genprm.labeling.config import load_section
from genprm.logs import setup_logging, timings_path, write_report
from genprm.quality import StageFailure, fail_stage
from genprm.rationale.config import SynthesisConfig
from genprm.rationale.runner import synthesis_stage
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.synthesis")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--solutions", default="data/rollout/solutions.jsonl")
    ap.add_argument("--values", default="data/labels/values.jsonl")
    ap.add_argument("--eval-glob", default="data/prepared/eval/*.jsonl")
    ap.add_argument("--out", default="data/sft")
    ap.add_argument("--metrics", default="metrics/synthesis.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    ap.add_argument("--model", default=None, help="teacher model (unless engine.settings.model is set)")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("synthesis", args.metrics)
    setup_logging()
    cfg = load_section(args.params, "synthesis", SynthesisConfig)
    eval_paths = sorted(glob.glob(args.eval_glob))
    try:
        metrics = synthesis_stage(cfg, args.solutions, args.values, eval_paths, args.out, model=args.model)
    except StageFailure as exc:
        return fail_stage(exc, args.metrics, timings_path=args.timings)
    _, timings = write_report(metrics, args.metrics, args.timings)
    log_stage_run("synthesis", cfg.model_dump(), [args.metrics], inputs=[args.solutions, args.values, *eval_paths],
                  timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
