"""DVC stage ``rollout``: step-forced policy paths until each problem has both outcomes (part 1).

Reads the ``rollout`` section of the params file (and ``sampling.prompt``, the policy's prompt),
the training problems and the policy folder (``--model``, default ``models/policy``); runs the missing
shards (a killed run resumes where it stopped) and merges them::

    data/rollout/solutions.jsonl     kept Solution records (metadata: mc_first, paths_sampled, ...)
    work/rollout/rollout-0000i.*     shards (resumable scratch, not a DVC output)
    metrics/rollout.json             counts (dropped, no_correct / no_incorrect problems), completions
    timings/rollout.json             seconds, engine seconds, completions/s (untracked)

Problems that never get both outcomes are dropped unless ``rollout.one_sided: keep``. When no
solution is kept the stage writes its metrics, then fails (exit 1) with a message that names the
counts by cause and the knobs to change; ``data/rollout/solutions.jsonl`` is not written.

Run: ``python stages/rollout.py [--params params.yaml]``; several workers:
``--shard-index i --num-shards n --no-merge`` each, then ``--merge-only``.
"""

from __future__ import annotations

import argparse
import logging

from genprm.config import SamplingConfig
from genprm.labeling.config import RolloutConfig, load_section
from genprm.labeling.runner import rollout_stage
from genprm.logs import setup_logging, timings_path, write_report
from genprm.quality import StageFailure, fail_stage
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.rollout")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--problems", default="data/prepared/train.jsonl")
    ap.add_argument("--out", default="data/rollout/solutions.jsonl")
    ap.add_argument("--shard-dir", default="work/rollout")
    ap.add_argument("--metrics", default="metrics/rollout.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    ap.add_argument("--model", default="models/policy", help="model folder (engine.settings.model wins)")
    ap.add_argument("--shard-index", type=int, default=0)
    ap.add_argument("--num-shards", type=int, default=1)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--no-merge", action="store_true", help="only run this worker's shards")
    mode.add_argument("--merge-only", action="store_true", help="only merge (every shard must exist)")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("rollout", args.metrics)
    setup_logging()
    cfg = load_section(args.params, "rollout", RolloutConfig)
    prompt = load_section(args.params, "sampling", SamplingConfig, optional=True).prompt  # system turn, worked examples
    try:
        metrics = rollout_stage(
            args.problems, cfg, args.out, args.shard_dir, model=args.model,
            shard_index=args.shard_index, num_shards=args.num_shards, merge=not args.no_merge,
            run=not args.merge_only, prompt=prompt,
        )
    except StageFailure as exc:
        return fail_stage(exc, args.metrics, timings_path=args.timings)
    if not args.no_merge:
        _, timings = write_report(metrics, args.metrics, args.timings)
        log_stage_run("rollout", {**cfg.model_dump(), "prompt": prompt.model_dump()}, [args.metrics],
                      inputs=[args.problems, args.model], timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
