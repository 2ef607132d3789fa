"""genprm.sandbox: a secure, fast, stateful sandbox for model-written Python.

Usage::

    from genprm.sandbox import Sandbox, SandboxConfig, format_code_output

    with Sandbox(SandboxConfig(timeout_s=5)) as sandbox:
        with sandbox.session() as session:          # one session per solution
            session.run("import sympy as sp; x = sp.Symbol('x')")
            result = session.run("print(sp.factor(x**2 - 1))")
            text = format_code_output(result)       # "(x - 1)*(x + 1)"

Architecture: :class:`Sandbox` starts a fork server (:mod:`.server`) with sympy,
numpy and scipy pre-imported; each :class:`Session` is a process forked from it
(:mod:`.child`) that isolates itself (:mod:`.isolation`: namespaces, rlimits, uid
drop or user namespace, :mod:`.landlock`, :mod:`.seccomp`) and then executes
snippets in one persistent namespace.  The client talks to each session over its
own socket with numbered frames (:mod:`.protocol`) and can SIGKILL it through a
pidfd.  :mod:`.output` maps results to the released GenPRM ``[Code Output]``
conventions (the mapping table is in its docstring); :mod:`.report` describes
the isolation reached; :mod:`.cli` provides ``genprm sandbox run|doctor``.

What the sandbox does NOT cover:

* CPU and memory *contention*: sessions share the host's cores and page cache;
  there are no cgroups (they belong to the host), so N busy sessions slow each
  other and the caller down.  Memory is capped per session (RLIMIT_AS), not
  globally.
* Disk usage: each file is capped (RLIMIT_FSIZE) and open files are capped, but
  a session can create many files in its scratch directory until the disk (or
  /tmp) is full; scratch is deleted when the session ends.
* Kernel bugs: a kernel exploit through an allowed syscall (memory management,
  files, pipes, timers) defeats every layer; seccomp is a deny-list, not an
  allow-list.
* Reading world-readable files under the allowed read-only trees (the Python
  installation, its site-packages including this repository's sources when they
  are on ``sys.path``, /usr/lib).
* Side channels (timing, cache), and output that is valid but misleading.
* Architectures other than x86_64 (the seccomp layer is then missing and the
  report says so), and kernels without Landlock (filesystem layer missing).
* Only Python-level ``sys.stdout``/``sys.stderr`` are captured; writes to fds 1
  and 2 from C code are discarded.
"""

from .client import InsufficientIsolation, Sandbox, SandboxError, Session, doctor, get_sandbox
from .config import IsolationLevel, SandboxConfig
from .output import (
    NO_CODE_OUTPUT,
    ExecResult,
    Status,
    code_output_block,
    format_code_output,
)
from .report import IsolationReport, LayerStatus

SandboxServer = Sandbox

__all__ = [
    "ExecResult",
    "InsufficientIsolation",
    "IsolationLevel",
    "IsolationReport",
    "LayerStatus",
    "NO_CODE_OUTPUT",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxServer",
    "Session",
    "Status",
    "code_output_block",
    "doctor",
    "format_code_output",
    "get_sandbox",
]
