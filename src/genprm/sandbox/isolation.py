"""Apply the isolation layers inside a freshly forked session process.

The fork server computes a :class:`ChildPlan` once (seccomp program, Landlock
ABI, readable directories) and every forked session calls
:func:`apply_layers` before it reads any code.  In *probe* mode
(``plan.required is None``) every layer is attempted and failures are only
recorded; for real sessions ``plan.required`` lists the layers the probe
managed to apply, and a failure of any of them raises :class:`IsolationError`
(the session exits instead of running with less isolation).
:func:`self_tests` runs the hostile actions the layers must block.

Order matters: scratch dir, namespaces (need privileges), rlimits, uid drop /
capability drop, parent-death signal, Landlock, seccomp last (it forbids the
syscalls used before it).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import sys
import sysconfig
import tempfile
from dataclasses import dataclass

from . import landlock, seccomp
from .config import SandboxConfig
from .report import LayerStatus

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
_PR_SET_PDEATHSIG = 1
_CAP_VERSION_3 = 0x20080522
SESSION_UID_BASE = 2_000_000
"""As root, a session runs as uid/gid ``SESSION_UID_BASE + pid``: unique among live sessions."""

MINIMAL_ENV_KEYS = ("PATH", "LANG", "LC_ALL")


class IsolationError(RuntimeError):
    """A layer that must be applied could not be."""


@dataclass(frozen=True)
class ChildPlan:
    config: SandboxConfig
    server_pid: int
    seccomp_program: bytes | None
    landlock_abi: int
    read_dirs: tuple[str, ...]
    required: frozenset[str] | None = None
    library_dirs: tuple[str, ...] = ()
    """stdlib and site-packages: must stay readable for imports not done by the server."""


def library_dirs() -> tuple[str, ...]:
    """Computed in the server: sysconfig itself imports lazily, so not in a session."""
    paths = sysconfig.get_paths()
    return tuple(dict.fromkeys(paths[k] for k in ("stdlib", "purelib", "platlib")))


# Never granted read access, even when sys.path or a prefix points there: too broad.
_TOO_BROAD = ("/", "/tmp", "/var/tmp", "/var", "/dev", "/dev/shm", "/proc", "/sys", "/etc", "/home",
              "/root", "/run", "/mnt", "/media", "/srv", "/opt", "/usr", "/work")


def read_dirs_for_interpreter(scratch_root: str | None = None) -> tuple[str, ...]:
    """Directories a session may read: the interpreter, its packages, system libraries.

    Directories that contain ``scratch_root`` (they would expose other sessions'
    scratch) and very broad directories such as ``/tmp`` or ``/home`` are left out."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share/zoneinfo"]
    candidates += [p for p in sys.path if p]
    out: list[str] = []
    for p in candidates:
        for q in (os.path.abspath(p), os.path.realpath(p)):
            if not os.path.isdir(q) or q in out or q in _TOO_BROAD:
                continue
            if scratch_root and (os.path.realpath(scratch_root) + "/").startswith(q.rstrip("/") + "/"):
                continue
            out.append(q)
    return tuple(out)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if _libc().capset(header, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _prctl(option: int, arg: int) -> None:
    libc = _libc()
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _set_limit(res: int, value: int) -> None:
    resource.setrlimit(res, (value, value))


def apply_layers(plan: ChildPlan, scratch: str) -> dict[str, LayerStatus]:
    """Isolate the calling (freshly forked) process; return the status of each layer."""
    cfg = plan.config
    results: dict[str, LayerStatus] = {}
    required = plan.required

    def record(name: str, ok: bool, detail: str) -> None:
        results[name] = LayerStatus(ok, detail)
        if not ok and required is not None and name in required:
            raise IsolationError(f"required isolation layer {name!r} failed: {detail}")

    is_root = os.geteuid() == 0
    uid = SESSION_UID_BASE + os.getpid() if is_root else os.getuid()
    gid = SESSION_UID_BASE + os.getpid() if is_root else os.getgid()

    # Private scratch directory, owned by the session uid.
    os.mkdir(scratch, 0o700)
    if is_root:
        os.chown(scratch, uid, gid)

    # Minimal environment (the server itself was started with one; clear again anyway).
    kept = {k: os.environ[k] for k in MINIMAL_ENV_KEYS if k in os.environ}
    os.environ.clear()
    os.environ.update(kept)
    os.environ.update({"HOME": scratch, "TMPDIR": scratch, "PATH": kept.get("PATH", "/usr/bin:/bin")})
    tempfile.tempdir = scratch
    record("env", True, f"{len(os.environ)} variables")

    if cfg.unsafe:
        os.chdir(scratch)
        return results

    # Namespaces.
    user_ns = False
    flags = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if not is_root:
        flags |= CLONE_NEWUSER
    off = set(cfg.disabled_layers)
    try:
        if "netns" in off:
            raise OSError("disabled by config")
        _unshare(flags)
        user_ns = not is_root
        record("netns", True, "new network namespace, loopback down")
        record("ipcns", True, "")
    except OSError as exc:
        try:  # the IPC/UTS namespaces alone are worth little; report network honestly
            record("netns", False, str(exc))
        finally:
            results.setdefault("ipcns", LayerStatus(False, str(exc)))
    if user_ns:
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError as exc:
            record("uid", False, f"user namespace id maps: {exc}")

    # Resource limits.
    try:
        with open("/proc/self/statm") as f:
            vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _set_limit(resource.RLIMIT_AS, vsize + cfg.memory_mb * 1024 * 1024)
        resource.setrlimit(resource.RLIMIT_CPU, (cfg.session_cpu_s, cfg.session_cpu_s + 1))
        _set_limit(resource.RLIMIT_FSIZE, cfg.max_file_mb * 1024 * 1024)
        _set_limit(resource.RLIMIT_NOFILE, cfg.max_open_files)
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_MEMLOCK, 0)
        _set_limit(resource.RLIMIT_MSGQUEUE, 0)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes fail with EFBIG instead
        record("rlimits", True, f"AS +{cfg.memory_mb} MiB, CPU {cfg.session_cpu_s} s/session, "
                                f"file {cfg.max_file_mb} MiB, {cfg.max_open_files} fds")
    except (OSError, ValueError) as exc:
        record("rlimits", False, str(exc))

    # Credentials.
    if "uid" in off:
        record("uid", False, "disabled by config")
    elif is_root:
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            _set_limit(resource.RLIMIT_NPROC, 0)
            record("uid", True, f"root dropped to uid/gid {uid}, no capabilities")
        except OSError as exc:
            record("uid", False, f"uid drop: {exc}")
    elif user_ns and "uid" not in results:
        try:
            _drop_capabilities()
            record("uid", True, f"user namespace, uid {uid}, capabilities dropped")
        except OSError as exc:
            record("uid", False, str(exc))
    elif "uid" not in results:
        record("uid", False, "not root and no user namespace: sessions share the caller's uid")

    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if os.getppid() != plan.server_pid:
        os._exit(70)
    os.chdir(scratch)

    # Landlock.
    if "landlock" in off:
        for name in ("landlock_fs", "landlock_net", "landlock_scope"):
            record(name, False, "disabled by config")
    elif plan.landlock_abi >= 1:
        try:
            enforced = landlock.restrict(list(plan.read_dirs), [scratch], plan.landlock_abi)
            record("landlock_fs", True, f"ABI {plan.landlock_abi}: read-only system, writable scratch only")
            record("landlock_net", enforced["net"], "" if enforced["net"] else f"needs ABI 4, kernel has {plan.landlock_abi}")
            record("landlock_scope", enforced["scope"], "" if enforced["scope"] else f"needs ABI 6, kernel has {plan.landlock_abi}")
        except OSError as exc:
            record("landlock_fs", False, str(exc))
            record("landlock_net", False, str(exc))
            record("landlock_scope", False, str(exc))
    else:
        for name in ("landlock_fs", "landlock_net", "landlock_scope"):
            record(name, False, "Landlock not available in this kernel")

    # Seccomp last.
    if "seccomp" in off:
        record("seccomp", False, "disabled by config")
    elif plan.seccomp_program is not None:
        try:
            seccomp.install(plan.seccomp_program)
            record("seccomp", True, f"{len(set(seccomp.DENIED_SYSCALLS.values()))} syscalls denied")
        except OSError as exc:
            record("seccomp", False, str(exc))
    else:
        record("seccomp", False, "unsupported architecture (x86_64 only)")
    return results


def self_tests(plan: ChildPlan, layers: dict[str, LayerStatus], scratch: str) -> dict[str, bool]:
    """Hostile actions that the applied layers must block; name -> blocked."""
    checks: dict[str, bool] = {}

    def blocked(fn) -> bool:
        try:
            fn()
        except (OSError, RuntimeError, ValueError):
            return True
        return False

    def _fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)

    def _thread() -> None:
        import threading
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()

    def _udp() -> None:
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", ("8.8.8.8", 53))

    def _raise_rlimit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        if hard == resource.RLIM_INFINITY:
            raise ValueError("no limit to raise")

    if layers.get("seccomp", LayerStatus(False)).ok:
        checks["fork"] = blocked(_fork)
        checks["thread"] = blocked(_thread)
        checks["udp_socket"] = blocked(_udp)
        checks["signal_server"] = blocked(lambda: os.kill(plan.server_pid, 0))
        checks["raise_rlimit"] = blocked(_raise_rlimit)
    if layers.get("landlock_fs", LayerStatus(False)).ok:
        checks["read_etc_passwd"] = blocked(lambda: open("/etc/passwd", "rb").close())
        probe_path = os.path.join(os.path.dirname(scratch), "probe-outside")
        checks["write_outside_scratch"] = blocked(lambda: open(probe_path, "wb").close())
        checks["write_in_scratch_allowed"] = not blocked(
            lambda: open(os.path.join(scratch, "probe"), "wb").close())
    return checks


def lazy_import_status(plan: ChildPlan) -> tuple[bool, str]:
    """Can this (isolated) process still read the interpreter's library directories?"""
    for path in plan.library_dirs:
        try:
            os.listdir(path)
        except OSError as exc:
            return False, (f"cannot read {path} ({exc.strerror}); only modules imported by the "
                           f"server before forking are usable. Install the interpreter world-readable "
                           f"(not under a 0700 home) to allow lazy imports")
    return True, ""
