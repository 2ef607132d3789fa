"""DVC stage ``prepare``: training problems and evaluation sets for a run.

Reads the ``world`` and ``prepare`` sections of the params file, loads every configured
source (the embedded world by default), decontaminates, and writes::

    data/prepared/train.jsonl          Problem records
    data/prepared/eval/<name>.jsonl    Problem or ProcessBenchSample records, one file per set
    data/prepared/removed.json         ids of removed training problems (eval overlap, duplicates)
    metrics/prepare.json               counts per source, removed duplicates
    timings/prepare.json               seconds (untracked)

Run: ``python stages/prepare.py [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from genprm.params import load_params
from genprm.logs import setup_logging, timed, timings_path, write_report
from genprm.prepare import prepare
from genprm.records import replace_dir, write_json, write_records
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.prepare")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/prepared")
    ap.add_argument("--metrics", default="metrics/prepare.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("prepare", args.metrics)
    setup_logging()
    params = load_params(args.params)
    cfg = params.prepare
    with timed("prepare", log) as t:
        data = prepare(
            [s.model_dump(exclude_none=True) for s in cfg.train],
            {k: s.model_dump(exclude_none=True) for k, s in cfg.eval.items()},
            world=params.world,
            decontaminate=cfg.decontaminate,
        )
        with replace_dir(args.out) as out:
            write_records(out / "train.jsonl", data.train)
            write_json(out / "removed.json", data.removed_ids)
            for name, rows in data.eval.items():
                write_records(out / "eval" / f"{name}.jsonl", rows)
    stats, timings = write_report(dict(data.stats, seconds=t["seconds"]), args.metrics, args.timings)
    log.info("train: %d kept of %d; eval sets: %s", stats["train"]["kept"], stats["train"]["loaded"], stats["eval"])
    log_stage_run("prepare", {"world": params.world.model_dump(), "prepare": cfg.model_dump()}, [args.metrics],
                  timings=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
