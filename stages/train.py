"""DVC stage ``train``: supervised fine-tuning of the GenPRM (method part 5).

Reads the SFT conversations and the base model, fine-tunes with the ``train`` params
(:mod:`genprm.training`), logs settings, metrics, the loss curve and lineage tags to an MLflow
run (``stages/lineage.py``; a child of the pipeline run, if any) and writes::

    models/genprm/           merged standard model folder (hf and vllm engines load it)
    models/genprm-adapter/   the LoRA adapter (mode: lora only)
    metrics/train.json       first/last loss, steps, tokens trained
    timings/train.json       seconds (untracked)
    plots/train_loss.json    the loss curve (DVC plot)

Checkpoints go to ``work/train`` every ``save_steps``; a killed run resumes from there.

Run: ``python stages/train.py [--params params.yaml]``; several GPUs:
``accelerate launch --config_file configs/accelerate/fsdp.yaml stages/train.py --params configs/paper.yaml``
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from genprm.logs import setup_logging, timings_path, write_report
from genprm.params import load_params
from genprm.records import SFTExample, read_records, write_json
from genprm.training import train_sft
from lineage import log_stage_run  # stages/lineage.py: this script's folder is on sys.path

log = logging.getLogger("stages.train")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/sft/train.jsonl")
    ap.add_argument("--base", default=None, help="base model (default: train.base_model)")
    ap.add_argument("--out", default="models/genprm")
    ap.add_argument("--adapter", default="models/genprm-adapter")
    ap.add_argument("--checkpoints", default="work/train")
    ap.add_argument("--metrics", default="metrics/train.json")
    ap.add_argument("--timings", default=None,
                    help="durations (untracked; default: timings/<stage>.json beside the metrics folder)")
    ap.add_argument("--plot", default="plots/train_loss.json")
    args = ap.parse_args(argv)
    args.timings = args.timings or timings_path("train", args.metrics)
    setup_logging()
    cfg = load_params(args.params).train
    if args.base:
        cfg = cfg.model_copy(update={"base_model": args.base})
    examples = read_records(args.data, SFTExample)
    adapter = Path(args.adapter)
    if cfg.mode == "full" and adapter.exists():
        shutil.rmtree(adapter)  # no stale adapter beside a fully fine-tuned model

    report = train_sft(examples, args.out, cfg, checkpoint_dir=args.checkpoints,
                       adapter_dir=adapter if cfg.mode == "lora" else None)
    if not _is_main():
        return 0
    curve = report.pop("loss_curve")
    _, timings = write_report(report, args.metrics, args.timings)
    write_json(args.plot, curve)
    log.info("trained %d steps in %.1f s: loss %.4f -> %.4f", report["steps"], report["seconds"],
             report["first_loss"], report["last_loss"])
    log_stage_run("train", {**cfg.model_dump(), "data": args.data, "examples": report["examples"]}, [args.metrics],
                  [args.plot], {"mode": cfg.mode},
                  inputs=[args.data, *([cfg.base_model] if Path(cfg.base_model).exists() else [])],
                  series={"train_loss": [(p["step"], p["loss"]) for p in curve]}, timings=timings)
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


if __name__ == "__main__":
    raise SystemExit(main())
