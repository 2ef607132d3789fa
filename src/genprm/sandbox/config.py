"""Typed configuration of the code sandbox: limits, isolation level, unsafe flag.

Usage::

    from genprm.sandbox import SandboxConfig, IsolationLevel
    cfg = SandboxConfig(timeout_s=5.0, memory_mb=1024, min_isolation=IsolationLevel.STRICT)

All limits are per session (one session = one solution) unless stated per snippet.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class IsolationLevel(enum.IntEnum):
    """Minimum isolation a sandbox must reach before it agrees to start.

    BASIC    rlimits + seccomp filter (no processes/threads/sockets/namespaces/ptrace)
             + minimal environment + hard kill from outside.
    STANDARD BASIC + Landlock filesystem (read-only system, private scratch)
             + a network barrier besides seccomp (network namespace or Landlock TCP).
    STRICT   STANDARD + network namespace + per-session uid (uid drop when root,
             user namespace otherwise) + Landlock signal/abstract-socket scoping.
    """

    NONE = 0
    BASIC = 1
    STANDARD = 2
    STRICT = 3

    @classmethod
    def parse(cls, value: "str | int | IsolationLevel") -> "IsolationLevel":
        if isinstance(value, IsolationLevel):
            return value
        if isinstance(value, int):
            return cls(value)
        return cls[str(value).strip().upper()]


# Modules imported in the fork server before any session is forked.  Sessions
# may run with a uid that cannot read the interpreter's files (e.g. a pyenv
# install under a 0700 /root), so everything a math snippet plausibly needs is
# imported up front; see IsolationReport.lazy_imports.
DEFAULT_PREIMPORTS: tuple[str, ...] = (
    "math", "cmath", "fractions", "decimal", "itertools", "functools", "collections",
    "statistics", "random", "re", "string", "json", "heapq", "bisect", "operator",
    "copy", "numbers", "datetime", "time", "textwrap", "pprint", "typing", "dataclasses",
    "os", "sys", "io", "abc", "enum", "contextlib", "warnings", "traceback", "unicodedata",
    "calendar", "locale", "glob", "pathlib", "tempfile", "struct", "array", "hashlib", "base64",
    "csv", "signal", "resource", "ctypes", "threading", "socket", "subprocess",
    "encodings.idna", "encodings.unicode_escape", "encodings.raw_unicode_escape",
    "encodings.utf_16", "encodings.utf_32", "encodings.latin_1", "encodings.cp1252",
    "sympy", "sympy.abc", "sympy.geometry", "sympy.solvers.inequalities",
    "sympy.ntheory", "sympy.combinatorics", "sympy.stats", "sympy.plotting",
    "numpy", "numpy.linalg", "numpy.polynomial", "numpy.random",
    "scipy", "scipy.special", "scipy.optimize", "scipy.integrate", "scipy.linalg",
    "scipy.stats", "scipy.interpolate", "scipy.fft", "scipy.sparse", "scipy.spatial",
)


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and policy for a sandbox server and its sessions."""

    timeout_s: float = 5.0
    """Default per-snippet wall-clock limit (the released GenPRM code used 5 s)."""
    kill_grace_s: float = 0.5
    """After timeout_s the snippet gets a TimeoutError; after this much more it is SIGKILLed."""
    memory_mb: int = 1024
    """Address space a session may add on top of the pre-imported server image."""
    session_cpu_s: int = 120
    """CPU seconds a whole session may use (RLIMIT_CPU backstop; the hard kill is per snippet)."""
    max_output_bytes: int = 64 * 1024
    """Captured stdout (and separately stderr) per snippet; beyond it the snippet is stopped."""
    max_file_mb: int = 16
    """Largest file a snippet may write in its scratch directory (RLIMIT_FSIZE)."""
    max_open_files: int = 64
    min_isolation: IsolationLevel = IsolationLevel.STANDARD
    unsafe: bool = False
    """Debugging only: skip every isolation layer. Loudly logged; never use on model output."""
    disabled_layers: tuple[str, ...] = ()
    """Layers not to apply (names as in the isolation report: "netns", "uid", "landlock",
    "seccomp"); the level is computed from what was applied, so the minimum still holds."""
    pool_size: int = 2
    """Pre-forked, already isolated sessions kept ready by the server."""
    preimports: tuple[str, ...] = field(default=DEFAULT_PREIMPORTS)
    scratch_root: str | None = None
    """Parent directory of the per-session scratch directories (default: a fresh dir in /tmp)."""
    start_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_isolation", IsolationLevel.parse(self.min_isolation))
        if self.timeout_s <= 0 or self.kill_grace_s < 0:
            raise ValueError("timeout_s must be > 0 and kill_grace_s >= 0")
        if self.memory_mb < 32:
            raise ValueError("memory_mb must be at least 32")
        if self.max_output_bytes < 64 or self.max_file_mb < 0 or self.session_cpu_s < 1:
            raise ValueError("output cap >= 64 bytes, file cap >= 0 MB, session CPU >= 1 s")
        object.__setattr__(self, "disabled_layers", tuple(self.disabled_layers))
        if self.pool_size < 0:
            raise ValueError("pool_size must be >= 0")
