"""One JSON record of a finished pipeline run: its headline numbers and each stage's time.

Reads the metrics files a run left in ``--root`` (``metrics/*.json``) and keeps what the README's
results quote: rollout and label quality, synthesis, training, ProcessBench F1 at Pass@1 and Maj@N
with the forced-judgement shares, Best-of-N at the largest N, critic refinement and the register
decision, plus the seconds each stage reports in its untracked ``timings/<stage>.json`` (durations
are kept out of the DVC-tracked metrics) and the machine it ran on::

    python bench/run_report.py --root . --name real-world --wall-seconds 2100 \\
        --out bench/measured/real_world_smollm2.json

A missing metrics file is an error naming it (the run did not finish); a missing timings file
gives that stage's seconds as null.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

from machine import describe

log = logging.getLogger("bench.run_report")

STAGES = ("prepare", "rollout", "montecarlo", "labels", "synthesis", "train", "world_bench", "processbench",
          "best_of_n", "critic", "register")
TIMING_STAGE = {"processbench": "evaluate_processbench"}
"""Metrics file stem -> the stage name of its ``timings/<stage>.json`` where the two differ."""


def _cpu_flags(wanted: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")) -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    return [f for f in wanted if f in flags]


def _load(root: Path, name: str) -> dict[str, Any]:
    path = root / "metrics" / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: the run did not finish its {name} stage")
    return json.loads(path.read_text())


def _timings(root: Path, name: str) -> dict[str, Any]:
    path = root / "timings" / f"{TIMING_STAGE.get(name, name)}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _stage_seconds(root: Path, name: str) -> float | None:
    t = _timings(root, name)
    return next((t[k] for k in ("stage_seconds", "seconds", "sampling_seconds") if k in t), None)


def summarize(root: Path) -> dict[str, Any]:
    m = {name: _load(root, name) for name in STAGES}
    pb = m["processbench"]
    maj = next(k for k in pb if k.startswith("maj@"))
    quality = m["labels"].get("quality", {})
    return {
        "rollout": {k: m["rollout"][k] for k in ("problems", "kept_problems", "no_correct_problems",
                                                 "no_incorrect_problems", "solutions", "completions")},
        "label_quality": {c: {k: quality[c][k] for k in ("step_accuracy", "f1", "first_error_accuracy")}
                          for c in ("rpe@0.8", "hard") if c in quality},
        "synthesis": {"reviewed": m["synthesis"]["reviewed"], "kept": m["synthesis"]["examples"],
                      "yes_share": m["synthesis"]["gate"]["yes_share"]},
        "train": {k: m["train"][k] for k in ("steps", "first_loss", "last_loss", "mode")},
        "world_bench": {k: m["world_bench"][k] for k in ("size", "sampled", "first_error_kind")},
        "processbench": {
            arm: {"average_f1": round(pb[arm]["average_f1"], 2), "error_acc": pb[arm]["average_error_acc"],
                  "correct_acc": pb[arm]["average_correct_acc"], "forced_share": pb[arm]["forced_judgements"]["share"],
                  "error_acc_by_kind": pb[arm].get("error_acc_by_kind", {})}
            for arm in ("pass@1", maj)
        },
        "best_of_n": {"pass@1": m["best_of_n"]["pass@1"],
                      "at_n_max": {k: round(v, 2) for k, v in m["best_of_n"]["at_n_max"].items()},
                      "forced_share": m["best_of_n"]["forced_judgements"]["share"]},
        "critic": {"accuracy": m["critic"]["accuracy"], "forced_share": m["critic"]["forced_judgements"]["share"]},
        "register": {k: m["register"][k] for k in ("model_name", "alias", "reasons")},
        "stage_seconds": {name: _stage_seconds(root, name) for name in STAGES},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="the run's working tree")
    ap.add_argument("--name", required=True, help="the profile or make target that ran")
    ap.add_argument("--wall-seconds", type=float, default=None, help="the whole command's wall time")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    record = {"name": args.name, "machine": {**describe(), "cpu_flags": _cpu_flags()},
              "wall_seconds": args.wall_seconds, **summarize(args.root)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(args.out)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
