"""Benchmark: steps verified per second, batched verifier vs the released code's serial loop.

Same engine and model for both (the tiny local GenPRM of :mod:`genprm.prm.tiny`, or any model
folder given with ``--model``, on ``hf`` or ``vllm``), world solutions, a real sandbox. The serial baseline verifies one solution and one
path at a time, one request per engine call (as the released inference code does). Writes JSON::

    python bench/verifier.py --backend hf --solutions 64 --paths 8 --out bench/results/verifier.json
    python bench/verifier.py --backend vllm --model models/smollm2-135m-instruct --dtype bfloat16

The JSON also says how many judgements were forced (read from the logits because none parsed):
an untrained real model forces nearly all of them, which changes what is being timed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path

from genprm.engine import create_generator
from genprm.logs import setup_logging
from genprm.prm.tiny import build_tiny_genprm
from genprm.records import write_json
from genprm.sandbox import Sandbox
from genprm.verifier import GenPRMVerifier, VerifierOptions, forced_summary
from genprm.world.policy import corrupt_steps
from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps

from machine import describe  # bench/machine.py

log = logging.getLogger("bench.verifier")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    ap.add_argument("--model", default=None, help="a model folder (default: a tiny GenPRM, built)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--solutions", type=int, default=64)
    ap.add_argument("--paths", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--serial-solutions", type=int, default=None, help="time the serial loop on the first K only")
    ap.add_argument("--out", default="bench/results/verifier.json")
    args = ap.parse_args(argv)
    setup_logging()
    model = args.model or str(build_tiny_genprm(tempfile.mkdtemp(prefix="tiny_genprm_")))
    rng = random.Random(0)
    problems = generate_problems(args.solutions, 7, WorldConfig(min_ops=1, max_ops=3, max_value=30, max_multiplicand=9))
    sols = []
    for i, p in enumerate(problems):
        chain = parse_problem(p.problem)
        sols.append((p.problem, reference_steps(chain) if i % 2 else corrupt_steps(chain, rng, "arithmetic")))
    settings = {"model": model, "dtype": args.dtype}
    gen = create_generator(args.backend, **settings)
    opts = VerifierOptions(n_paths=args.paths, max_tokens=args.max_tokens, seed=0)
    out: dict = {"machine": describe(), "backend": args.backend, "model": model, "dtype": args.dtype,
                 "solutions": len(sols), "paths": args.paths, "max_tokens": args.max_tokens}
    with Sandbox() as sandbox:
        v = GenPRMVerifier(gen, sandbox, opts)
        v.verify(sols[:2], show_progress=False)  # warm-up
        t = time.perf_counter()
        results = v.verify(sols)
        batched = time.perf_counter() - t
        k = args.serial_solutions or len(sols)
        t = time.perf_counter()
        v.verify_serial(sols[:k])
        serial = time.perf_counter() - t
    gen.close()
    steps_b = sum(len(s) for _, s in sols) * args.paths
    steps_s = sum(len(s) for _, s in sols[:k]) * args.paths
    out.update(
        batched_seconds=batched, serial_seconds=serial, serial_solutions=k,
        batched_steps_per_s=steps_b / batched, serial_steps_per_s=steps_s / serial,
    )
    out["speedup"] = out["batched_steps_per_s"] / out["serial_steps_per_s"]
    out["forced_judgements"] = forced_summary(results)
    write_json(args.out, out)
    log.info("%s", json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
