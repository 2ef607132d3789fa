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
"""

from __future__ import annotations

import os

__all__ = ["KERNEL_PATHS", "kernel_env", "kernel_report"]

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


def kernel_report() -> dict[str, str | None]:
    """What this process runs: ATen's CPU capability and each kernel variable as set (None: unset)."""
    import torch

    report: dict[str, str | None] = {"aten": torch.backends.cpu.get_cpu_capability()}
    report.update({k: os.environ.get(k) for k in _VARIABLES})
    return report
