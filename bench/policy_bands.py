"""The world policy's accuracy across seeds and CPU kernel paths, for choosing its training.

Runs ``stages/policy.py`` once per (seed, kernel path) cell, each in its own folder under
``--work``, with the profile's ``seed`` set to the cell's seed and the kernel path's
environment (``genprm.kernels``). Two cells run at a time (one core each: ``policy.threads``
is 1). Writes every cell's accuracy, first-error mix and final loss, with the target the
training mix sets, to ``--out``::

    python bench/policy_bands.py --seeds 0 1 2 --paths native avx2 \
        --set policy.steps=1200 --out bench/measured/policy_bands.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from genprm.kernels import kernel_env  # noqa: E402


def _set(data: dict, dotted: str, value) -> None:
    """Set ``a.b.0.c`` in nested dicts and lists (a digit indexes a list)."""
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data.setdefault(key, {})
    if isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


def run_cell(params: dict, seed: int, path: str, work: Path) -> dict:
    cell = work / f"seed{seed}-{path}"
    cell.mkdir(parents=True, exist_ok=True)
    p = json.loads(json.dumps(params))
    p["seed"] = seed
    (cell / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = {**os.environ, **kernel_env(path)}
    t0 = time.perf_counter()
    prepare = [sys.executable, str(ROOT / "stages/prepare.py"), "--params", str(cell / "params.yaml"),
               "--out", str(cell / "prepared"), "--metrics", str(cell / "prepare.json")]
    policy = [sys.executable, str(ROOT / "stages/policy.py"), "--params", str(cell / "params.yaml"),
              "--train", str(cell / "prepared/train.jsonl"), "--eval", str(cell / "prepared/eval/world_test.jsonl"),
              "--out", str(cell / "policy"), "--metrics", str(cell / "policy.json"), "--plot", str(cell / "loss.json")]
    for cmd in (prepare, policy):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"cell seed={seed} path={path} failed:\n{proc.stderr[-3000:]}")
    m = json.loads((cell / "policy.json").read_text())
    return {"seed": seed, "kernel_path": path, "accuracy": m["eval"]["accuracy"],
            "first_error_share": m["eval"]["first_error_share"], "final_loss": m["train"]["final_loss"],
            "loss_curve": json.loads((cell / "loss.json").read_text()), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--paths", nargs="+", default=["native", "avx2"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, YAML value")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=None, help="cell folders (default: a temporary folder)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    for item in args.set:
        key, _, value = item.partition("=")
        _set(params, key, yaml.safe_load(value))
    work = Path(args.work or tempfile.mkdtemp(prefix="policy-bands-"))
    cells = [(s, p) for s in args.seeds for p in args.paths]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda c: run_cell(params, c[0], c[1], work), cells))
    pol = params["policy"]
    target = {"accuracy": round(1 - pol["error_share"], 4), "arithmetic_share": pol["arithmetic_share"]}
    accs = [r["accuracy"] for r in rows]
    out = {"machine": describe(), "overrides": args.set, "target": target,
           "accuracy": {"min": min(accs), "max": max(accs)}, "cells": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for r in rows:
        print(f"seed {r['seed']} {r['kernel_path']:6s} acc {r['accuracy']:.3f} arith "
              f"{r['first_error_share'].get('arithmetic', 0):.2f} loss {r['final_loss']:.4f} {r['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
