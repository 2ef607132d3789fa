"""CPU kernel paths: the environment that makes PyTorch, MKL and oneDNN use one instruction set.

Float results of training and sampling depend on which vector kernels run (AVX2 or AVX512; the
summation order differs), so one seed can give different models on two CPUs. A kernel path
names that choice, so a run can be repeated on another path of the same machine:

- ``native``: whatever the libraries pick for this CPU (no variable set);
- ``avx2``: PyTorch's ATen kernels (``ATEN_CPU_CAPABILITY``), MKL (``MKL_ENABLE_INSTRUCTIONS``,
  ``MKL_CBWR`` for MKL's reproducible-results mode) and oneDNN (``ONEDNN_MAX_CPU_ISA``) capped at AVX2.

vLLM's CPU backend picks its own compiled ops library (``_C_AVX2`` / ``_C_AVX512`` / ``_C``) from the
CPU's flags, not from these variables; its matrix products go through PyTorch and follow them.
The variables must be set before torch is imported: a stage gets them from its environment.

Use::

    env = {**os.environ, **kernel_env("avx2")}
    subprocess.run([...], env=env)
    kernel_report()   # {"aten": "AVX2", "mkl_cbwr": ..., ...} of the running process

From the shell (how every stage of ``dvc.yaml`` runs, with the path from ``params.yaml``)::

    python -m genprm.kernels avx2 -- python stages/policy.py --params params.yaml

sets the path's variables (and clears the other kernel variables, so an inherited one cannot
leak into ``native``) and replaces itself with the command (``os.execvp``: same process id,
exit status and signals). A command named ``python`` / ``python3`` runs under this interpreter.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["KERNEL_PATHS", "kernel_env", "kernel_report", "active_kernel_env", "command_env", "main"]

log = logging.getLogger(__name__)

KERNEL_PATHS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_CBWR": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
}

_VARIABLES = sorted({k for env in KERNEL_PATHS.values() for k in env})


def kernel_env(path: str) -> dict[str, str]:
    """The environment variables of kernel path ``path``; an unknown name lists the known ones."""
    if path not in KERNEL_PATHS:
        raise ValueError(f"unknown kernel path {path!r}; known: {', '.join(KERNEL_PATHS)}")
    return dict(KERNEL_PATHS[path])


def active_kernel_env() -> dict[str, str]:
    """The kernel variables set in this process (empty under ``native``): what a result computed here depends on."""
    return {k: os.environ[k] for k in _VARIABLES if k in os.environ}


def kernel_report() -> dict[str, str | None]:
    """What this process runs: ATen's CPU capability and each kernel variable as set (None: unset)."""
    import torch

    report: dict[str, str | None] = {"aten": torch.backends.cpu.get_cpu_capability()}
    report.update({k: os.environ.get(k) for k in _VARIABLES})
    return report


def command_env(path: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) with kernel path ``path`` applied: its variables set and
    the other kernel variables removed, so ``native`` means the libraries' own choice even when the
    caller's environment carries an ``avx2`` variable."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _VARIABLES}
    env.update(kernel_env(path))
    return env


def main(argv: list[str] | None = None) -> int:
    """``python -m genprm.kernels PATH -- COMMAND ...``: run COMMAND under kernel path PATH (never returns on success)."""
    ap = argparse.ArgumentParser(
        prog="python -m genprm.kernels",
        description="Run a command with the CPU kernel variables of one kernel path set (before torch is imported).",
    )
    ap.add_argument("path", help=f"kernel path: {', '.join(KERNEL_PATHS)}")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    args = ap.parse_args(argv)
    command = list(args.cmd)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        ap.error("no command given (python -m genprm.kernels native -- python stages/policy.py)")
    try:
        env = command_env(args.path)
    except ValueError as exc:
        ap.error(str(exc))
    if command[0] in ("python", "python3"):
        command[0] = sys.executable
    if (Path.cwd() / "src" / "genprm").is_dir():
        # a DVC experiment runs in its own copy of the repository: its stages import that copy's
        # library, not the editable install's (the workspace, which may have changed since)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd() / "src"), env.get("PYTHONPATH")]))
    log.debug("kernel path %s: %s", args.path, kernel_env(args.path))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"python -m genprm.kernels: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached: execvpe replaced this process


if __name__ == "__main__":
    raise SystemExit(main())
