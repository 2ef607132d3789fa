"""The isolation report: which layers a sandbox could apply and what level that is.

Produced by the fork server at start-up from a probe session (each layer is
applied, then self-tests check that it bites: a socket, a fork, a thread, a read
of /etc/passwd, a write outside scratch, a signal to the server) and returned to
the client as ``Sandbox.report``; ``genprm sandbox doctor`` prints ``report.format()``.

Usage::

    report = sandbox.report
    report.level                  # IsolationLevel.STRICT
    report.meets(IsolationLevel.STANDARD)  # True
    print(report.format())
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import IsolationLevel

LAYER_DESCRIPTIONS: dict[str, str] = {
    "env": "minimal environment (no inherited variables or secrets)",
    "rlimits": "caps on address space, session CPU time, file size, open files, core dumps",
    "hard_kill": "SIGKILL from outside through a pidfd when a snippet overruns its time-out",
    "seccomp": "syscall filter: no processes, threads, sockets, namespaces, ptrace, rlimit raising",
    "netns": "private network namespace (no interfaces)",
    "ipcns": "private SysV IPC namespace",
    "uid": "per-session uid (uid drop when root, user namespace + no capabilities otherwise)",
    "landlock_fs": "Landlock: filesystem read-only (interpreter and libraries) + private scratch dir",
    "landlock_net": "Landlock: TCP bind/connect denied",
    "landlock_scope": "Landlock: signals and abstract unix sockets scoped to the session",
}

_LEVEL_LAYERS: dict[IsolationLevel, tuple[str, ...]] = {
    IsolationLevel.BASIC: ("env", "rlimits", "hard_kill", "seccomp"),
    IsolationLevel.STANDARD: ("landlock_fs",),
    IsolationLevel.STRICT: ("netns", "uid", "landlock_scope"),
}


@dataclass(frozen=True)
class LayerStatus:
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class IsolationReport:
    layers: dict[str, LayerStatus]
    checks: dict[str, bool] = field(default_factory=dict)
    """Self-tests run inside the probe session: name -> the hostile action was blocked."""
    unsafe: bool = False
    lazy_imports: bool = True
    lazy_imports_detail: str = ""
    info: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> IsolationLevel:
        """Highest level whose layers all applied and whose self-tests all passed."""
        if self.unsafe:
            return IsolationLevel.NONE
        reached = IsolationLevel.NONE
        for level in (IsolationLevel.BASIC, IsolationLevel.STANDARD, IsolationLevel.STRICT):
            needed = list(_LEVEL_LAYERS[level])
            if level is IsolationLevel.STANDARD:
                network_barrier = self._ok("netns") or self._ok("landlock_net")
                if not network_barrier:
                    break
            if not all(self._ok(name) for name in needed):
                break
            reached = level
        if reached > IsolationLevel.NONE and self.checks and not all(self.checks.values()):
            return IsolationLevel.NONE
        return reached

    def _ok(self, name: str) -> bool:
        status = self.layers.get(name)
        return bool(status and status.ok)

    def meets(self, minimum: IsolationLevel) -> bool:
        return self.level >= minimum

    def to_dict(self) -> dict:
        return {
            "level": self.level.name.lower(),
            "unsafe": self.unsafe,
            "layers": {k: {"ok": v.ok, "detail": v.detail} for k, v in self.layers.items()},
            "checks": dict(self.checks),
            "lazy_imports": self.lazy_imports,
            "lazy_imports_detail": self.lazy_imports_detail,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "IsolationReport":
        return cls(
            layers={k: LayerStatus(bool(v["ok"]), str(v.get("detail", ""))) for k, v in data["layers"].items()},
            checks={k: bool(v) for k, v in data.get("checks", {}).items()},
            unsafe=bool(data.get("unsafe", False)),
            lazy_imports=bool(data.get("lazy_imports", True)),
            lazy_imports_detail=str(data.get("lazy_imports_detail", "")),
            info={k: str(v) for k, v in data.get("info", {}).items()},
        )

    def format(self, minimum: IsolationLevel | None = None) -> str:
        lines = [f"isolation level: {self.level.name.lower()}"
                 + (f" (minimum {minimum.name.lower()}: {'met' if self.meets(minimum) else 'NOT MET'})"
                    if minimum is not None else "")]
        if self.unsafe:
            lines.append("UNSAFE MODE: no isolation layer is applied")
        for name, desc in LAYER_DESCRIPTIONS.items():
            st = self.layers.get(name, LayerStatus(False, "not attempted"))
            lines.append(f"  [{'ok' if st.ok else '--'}] {name:<15} {desc}" + (f" ({st.detail})" if st.detail else ""))
        if self.checks:
            lines.append("self-tests (hostile action blocked?):")
            for name, blocked in self.checks.items():
                lines.append(f"  [{'ok' if blocked else 'FAIL'}] {name}")
        lines.append(f"lazy imports in sessions: {'yes' if self.lazy_imports else 'NO'}"
                     + (f" ({self.lazy_imports_detail})" if self.lazy_imports_detail else ""))
        for k, v in self.info.items():
            lines.append(f"{k}: {v}")
        return "\n".join(lines)
