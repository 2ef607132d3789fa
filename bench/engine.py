"""Benchmark the generation backends: tokens/s of one batched call vs a loop of single requests.

For each backend and batch size (default 1, 16, 64 chat prompts, ``n`` = 8 samples each) it
times one ``generate(requests)`` call and a loop of ``generate([request])`` calls (the
pattern of the released GenPRM code), and writes JSON with generated tokens/s for both and the
speed-up of the batched call::

    PYTHONPATH=src python bench/engine.py                       # builds the tiny test model
    PYTHONPATH=src python bench/engine.py --model path/to/model --backends vllm --max-tokens 256
    PYTHONPATH=src python bench/engine.py --model models/smollm2-135m-instruct --batch-sizes 16 --n 4 \\
        --dtype bfloat16 --repeats 3                            # the real model (make real-model)
    PYTHONPATH=src python bench/engine.py --backends openai --openai-base-url http://127.0.0.1:8000/v1 \\
        --openai-model tiny --model path/to/model

Without ``--model`` the tiny test model is built in a temporary folder (about a minute).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe  # bench/machine.py

log = logging.getLogger("bench.engine")


def make_requests(count: int, n: int, max_tokens: int, seed: int, seeded: bool) -> list[Any]:
    from genprm.engine import GenerationRequest
    from genprm.engine.tiny_model import arithmetic_solution

    rng = random.Random(seed)
    return [
        GenerationRequest(
            messages=[{"role": "user", "content": arithmetic_solution(rng)[0]}],
            n=n,
            temperature=1.0,
            seed=seed + i if seeded else None,
            max_tokens=max_tokens,
        )
        for i in range(count)
    ]


def count_tokens(results: list[list[Any]]) -> int:
    return sum(len(c.token_ids) for cs in results for c in cs)


def run_mode(gen: Any, requests: list[Any], batched: bool, repeats: int = 1) -> dict[str, Any]:
    """Time ``repeats`` runs; the row is the run with the median tokens/s (all runs' tokens/s in ``runs``)."""
    rows = []
    for _ in range(repeats):
        start = time.perf_counter()
        if batched:
            results = gen.generate(requests)
        else:
            results = [gen.generate([r])[0] for r in requests]
        seconds = time.perf_counter() - start
        tokens = count_tokens(results)
        rows.append({"seconds": round(seconds, 3), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)})
    row = sorted(rows, key=lambda r: r["tokens_per_s"])[(repeats - 1) // 2]
    return {**row, "runs": [r["tokens_per_s"] for r in rows]} if repeats > 1 else row


def make_generator(backend: str, args: argparse.Namespace, model: str) -> Any:
    from genprm.engine import create_generator

    if backend == "vllm":
        return create_generator("vllm", model=model, dtype=args.dtype)
    if backend == "hf":
        return create_generator(
            "hf", model=model, dtype=args.dtype, batch_size=args.hf_batch_size, num_threads=args.hf_threads
        )
    if backend == "openai":
        if not args.openai_base_url:
            raise SystemExit("--backends openai needs --openai-base-url (and --openai-model)")
        return create_generator(
            "openai", model=args.openai_model, base_url=args.openai_base_url, tokenizer=model,
            max_concurrency=args.openai_concurrency,
        )
    raise SystemExit(f"unknown backend {backend!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder; default: build the tiny test model")
    parser.add_argument("--backends", default="vllm,hf", help="comma-separated: vllm, hf, openai")
    parser.add_argument("--batch-sizes", default="1,16,64")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--hf-batch-size", type=int, default=512, help="rows per transformers generate call")
    parser.add_argument("--hf-threads", type=int, help="torch threads of the hf backend (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1, help="time each mode this often; report the median run")
    parser.add_argument("--openai-base-url")
    parser.add_argument("--openai-model", default="tiny")
    parser.add_argument("--openai-concurrency", type=int, default=8)
    parser.add_argument("--no-loop", action="store_true", help="skip the loop of single requests")
    parser.add_argument("--seed", type=int, default=0, help="prompt choice; with --seeded also request seeds")
    parser.add_argument("--seeded", action="store_true", help="give every request its own sampling seed")
    parser.add_argument("--out", default="bench/results/engine.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    model = args.model
    if model is None:
        from genprm.engine.tiny_model import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="genprm-tiny-"))))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows: list[dict[str, Any]] = []
    speedup: dict[str, dict[str, float]] = {}
    for backend in args.backends.split(","):
        gen = make_generator(backend, args, model)
        run_mode(gen, make_requests(2, args.n, 8, args.seed, False), batched=True)  # warm-up
        for b in batch_sizes:
            reqs = make_requests(b, args.n, args.max_tokens, args.seed, args.seeded)
            batched = run_mode(gen, reqs, batched=True, repeats=args.repeats)
            rows.append({"backend": backend, "batch": b, "n": args.n, "mode": "batched", **batched})
            log.info("%s batch %d batched: %s", backend, b, batched)
            if not args.no_loop:
                loop = run_mode(gen, reqs, batched=False, repeats=args.repeats)
                rows.append({"backend": backend, "batch": b, "n": args.n, "mode": "loop", **loop})
                log.info("%s batch %d loop: %s", backend, b, loop)
                speedup.setdefault(backend, {})[str(b)] = round(batched["tokens_per_s"] / loop["tokens_per_s"], 2)
        gen.close()
        del gen

    result = {
        "model": model if args.model else "tiny test model (built)",
        "machine": describe(),
        "settings": {"n": args.n, "seeded": args.seeded, "max_tokens": args.max_tokens, "temperature": 1.0, "dtype": args.dtype,
                     "hf_batch_size": args.hf_batch_size, "hf_threads": args.hf_threads, "repeats": args.repeats},
        "results": rows,
        "speedup_batched_over_loop": speedup,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s; batched/loop speed-up: %s", out, json.dumps(speedup))


if __name__ == "__main__":
    main()
