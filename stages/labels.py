"""DVC stage ``labels``: RPE / difference / hard step labels from stored MC values (part 3).

Reads the ``labels`` section of the params file, the Monte-Carlo values and the rollout's
solutions; labels every step, runs the quality gate (a failure stops the stage with a report
of each failed expectation and offending rows), and on world problems scores the labels
against the exact checker::

    data/labels/values.jsonl     StepValues records with labels {hard, rpe, difference}
    metrics/labels.json          label shares, gate summary, quality per criterion, seconds

Run: ``python stages/labels.py [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import logging

from genprm.labeling.config import LabelsConfig, load_section
from genprm.labeling.runner import labels_stage
from genprm.logs import setup_logging
from genprm.records import write_json
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.labels")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--values", default="data/montecarlo/values.jsonl")
    ap.add_argument("--solutions", default="data/rollout/solutions.jsonl")
    ap.add_argument("--out", default="data/labels/values.jsonl")
    ap.add_argument("--metrics", default="metrics/labels.json")
    args = ap.parse_args(argv)
    setup_logging()
    cfg = load_section(args.params, "labels", LabelsConfig)
    metrics = labels_stage(args.values, args.solutions, cfg, args.out)
    write_json(args.metrics, metrics)
    log_stage_run("labels", cfg.model_dump(), [args.metrics], inputs=[args.values, args.solutions])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
