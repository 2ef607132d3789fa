"""DVC stage ``labels``: RPE / difference / hard step labels from stored MC values (part 3).

Reads the ``labels`` section of the params file, the Monte-Carlo values and the rollout's
solutions; labels every step, runs the quality gate, and on world problems scores the labels
against the exact checker::

    data/labels/values.jsonl     StepValues records with labels {hard, rpe, difference}
    metrics/labels.json          label shares, gate summary, quality per criterion
    timings/labels.json          stage seconds (untracked)

A failing gate first writes its report, then fails the stage (exit 1): ``metrics/labels.json``
with ``gate.failures`` (each failed expectation: name, column, observed value, rejected rows),
and the labelled values in ``data/labels/values.gate-failed.jsonl`` instead of
``values.jsonl``; the message says what to change. No values at all fail the same way.

Run: ``python stages/labels.py [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import logging

from genprm.labeling.config import LabelsConfig, load_section
from genprm.labeling.runner import labels_stage
from genprm.logs import setup_logging, timings_path, write_report
from genprm.quality import StageFailure, fail_stage
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.labels")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--values", default="data/montecarlo/values.jsonl")
    ap.add_argument("--solutions", default="data/rollout/solutions.jsonl")
    ap.add_argument("--out", default="data/labels/values.jsonl")
    ap.add_argument("--metrics", default="metrics/labels.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("labels", args.metrics)
    setup_logging()
    cfg = load_section(args.params, "labels", LabelsConfig)
    try:
        metrics = labels_stage(args.values, args.solutions, cfg, args.out)
    except StageFailure as exc:
        return fail_stage(exc, args.metrics, timings_path=args.timings)
    _, timings = write_report(metrics, args.metrics, args.timings)
    log_stage_run("labels", cfg.model_dump(), [args.metrics], inputs=[args.values, args.solutions], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
