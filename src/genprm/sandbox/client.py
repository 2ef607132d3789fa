"""Client side: :class:`Sandbox` (one fork server per process) and :class:`Session`.

Usage::

    from genprm.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(timeout_s=5)) as sandbox:      # starts the fork server (~1 s)
        with sandbox.session() as session:                  # one per solution
            session.run("x = 41")
            result = session.run("print(x + 1)")           # ExecResult(status=OK, stdout="42\\n")
        sandbox.run_once("print(2 ** 10)")                  # throw-away session

Thread safety: a Sandbox may be shared by threads; each Session serialises its
own calls.  A Sandbox belongs to the process that created it; after ``fork`` or
in another worker process create a new one (use :func:`get_sandbox` for a
per-process singleton).

Time-outs: the session's own timer raises ``TimeoutError`` at ``timeout``; if no
reply has come ``kill_grace_s`` later the client SIGKILLs the session through a
pidfd and reports ``timeout`` with ``session_lost=True``.  A session that dies,
is killed, or answers out of sequence is reported (``crashed`` / ``timeout``)
and replaced transparently by a fresh one on the next ``run``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .config import IsolationLevel, SandboxConfig
from .output import TIMEOUT_ERROR, ExecResult, Status
from .protocol import (
    FrameTimeout,
    PeerClosed,
    ProtocolError,
    config_to_dict,
    ctl_recv,
    ctl_send,
    recv_frame,
    send_frame,
)
from .report import IsolationReport

logger = logging.getLogger("genprm.sandbox")

_STATUSES = {s.value: s for s in Status}


class SandboxError(RuntimeError):
    """The sandbox service failed (could not start, server died, no session available)."""


class InsufficientIsolation(SandboxError):
    """The configured minimum isolation level cannot be reached on this machine."""

    def __init__(self, report: IsolationReport, minimum: IsolationLevel) -> None:
        self.report = report
        self.minimum = minimum
        super().__init__(
            f"sandbox refuses to start: isolation level {report.level.name.lower()} is below the "
            f"configured minimum {minimum.name.lower()}. Run `genprm sandbox doctor` for details, "
            f"lower SandboxConfig.min_isolation, or (debugging only) set unsafe=True.\n"
            + report.format(minimum))


def _server_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2])
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": src,
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/nonexistent",
    }
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"):
        env[var] = "1"  # sessions may not start threads
    return env


class Sandbox:
    """A fork server plus a pool of pre-forked, isolated sessions."""

    def __init__(self, config: SandboxConfig | None = None, *, enforce_minimum: bool = True) -> None:
        self.config = config or SandboxConfig()
        self._enforce = enforce_minimum
        self._ctl: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._owner_pid = os.getpid()
        self.report: IsolationReport | None = None
        self.server_pid: int | None = None

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> "Sandbox":
        with self._start_lock:
            if self._proc is None:
                self._start()
        return self

    def _start(self) -> None:
        if self.config.unsafe:
            logger.warning("genprm sandbox in UNSAFE MODE: snippets run with NO isolation. "
                           "Never use this for model-written code.")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cmd = [sys.executable, "-m", "genprm.sandbox.server", "--ctl-fd", str(theirs.fileno()),
               "--log-level", logging.getLevelName(min(logger.getEffectiveLevel(), logging.WARNING))]
        try:
            self._proc = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], env=_server_env(),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          start_new_session=True, close_fds=True, cwd="/")
        finally:
            theirs.close()
        self._ctl = ours
        try:
            ctl_send(ours, {"op": "hello", "config": config_to_dict(self.config)})
            ours.settimeout(self.config.start_timeout_s)
            reply, _ = ctl_recv(ours)
            ours.settimeout(None)
        except (OSError, ValueError) as exc:
            self.close()
            raise SandboxError(f"sandbox server did not start: {exc}") from None
        if not reply or not reply.get("ok"):
            self.close()
            raise SandboxError(f"sandbox server failed to start: {reply and reply.get('error')}")
        self.server_pid = int(reply["pid"])
        self.report = IsolationReport.from_dict(reply["report"])
        if self._enforce and not self.config.unsafe and not self.report.meets(self.config.min_isolation):
            report = self.report
            self.close()
            raise InsufficientIsolation(report, self.config.min_isolation)
        if not self.report.lazy_imports:
            logger.info("sandbox sessions cannot import modules lazily: %s", self.report.lazy_imports_detail)
        logger.debug("sandbox server %s started at level %s", self.server_pid, self.report.level.name)

    def close(self) -> None:
        ctl, proc = self._ctl, self._proc
        self._ctl, self._proc = None, None
        if ctl is not None and os.getpid() == self._owner_pid:
            try:
                ctl_send(ctl, {"op": "shutdown"})
            except OSError:
                pass
            ctl.close()
        if proc is not None and os.getpid() == self._owner_pid:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; prefer close()/with
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- sessions -----------------------------------------------------------
    def _request(self, msg: dict, maxfds: int = 0) -> tuple[dict, list[int]]:
        if os.getpid() != self._owner_pid:
            raise SandboxError("this Sandbox belongs to another process; create one per process")
        if self._ctl is None:
            self.start()
        assert self._ctl is not None
        with self._lock:
            try:
                ctl_send(self._ctl, msg)
                reply, fds = ctl_recv(self._ctl, maxfds)
            except (OSError, ValueError) as exc:
                raise SandboxError(f"sandbox server unreachable: {exc}") from None
        if reply is None:
            raise SandboxError("sandbox server exited")
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            raise SandboxError(f"sandbox server: {reply.get('error')}")
        return reply, fds

    def ping(self) -> dict:
        return self._request({"op": "ping"})[0]

    def _new_process(self) -> "_SessionProcess":
        reply, fds = self._request({"op": "new"}, maxfds=2)
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise SandboxError("sandbox server sent a session without its file descriptors")
        return _SessionProcess(int(reply["pid"]), fds[0], fds[1], str(reply.get("scratch", "")))

    def session(self) -> "Session":
        """A new session (its own process, namespace and scratch directory)."""
        return Session(self)

    def run_once(self, code: str, timeout: float | None = None) -> ExecResult:
        with self.session() as session:
            return session.run(code, timeout)


class _SessionProcess:
    def __init__(self, pid: int, sock_fd: int, pidfd: int, scratch: str) -> None:
        self.pid, self.fd, self.pidfd, self.scratch = pid, sock_fd, pidfd, scratch

    def kill(self) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self.fd, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Session:
    """One solution's persistent Python namespace in its own isolated process."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._proc: _SessionProcess | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self.restarts = 0
        self.closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def scratch(self) -> str | None:
        return self._proc.scratch if self._proc else None

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Execute ``code`` in this session's namespace; never raises for snippet failures."""
        cfg = self.sandbox.config
        timeout = cfg.timeout_s if timeout is None else float(timeout)
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        with self._lock:
            if self.closed:
                raise SandboxError("session is closed")
            if self._proc is None:
                if self._seq:
                    self.restarts += 1
                self._proc = self.sandbox._new_process()
            proc = self._proc
            self._seq += 1
            seq = self._seq
            t0 = time.monotonic()
            max_reply = 4 * 2 * cfg.max_output_bytes + 64 * 1024 + 8 * len(code)
            try:
                send_frame(proc.fd, {"seq": seq, "code": code, "timeout": timeout})
                reply = recv_frame(proc.fd, t0 + timeout + cfg.kill_grace_s, max_reply)
            except FrameTimeout:
                self._lose(proc)
                return ExecResult(Status.TIMEOUT, error=TIMEOUT_ERROR, duration_s=time.monotonic() - t0,
                                  session_lost=True, seq=seq, extra={"killed": True})
            except (PeerClosed, BrokenPipeError, ConnectionResetError):
                self._lose(proc)
                return ExecResult(Status.CRASHED, error="SandboxCrash: the session process died",
                                  duration_s=time.monotonic() - t0, session_lost=True, seq=seq)
            except (ProtocolError, OSError) as exc:
                self._lose(proc)
                return self._desync(seq, t0, str(exc))
            return self._result(proc, reply, seq, t0)

    def _result(self, proc: _SessionProcess, reply: dict, seq: int, t0: float) -> ExecResult:
        status = _STATUSES.get(reply.get("status"))  # type: ignore[arg-type]
        fields_ok = (isinstance(reply.get("stdout"), str) and isinstance(reply.get("stderr"), str)
                     and (reply.get("error") is None or isinstance(reply.get("error"), str)))
        if reply.get("seq") != seq or status is None or not fields_ok:
            self._lose(proc)
            return self._desync(seq, t0, f"reply seq {reply.get('seq')!r} for request {seq}")
        return ExecResult(status, stdout=reply["stdout"], error=reply.get("error"),
                          duration_s=time.monotonic() - t0, stderr=reply["stderr"],
                          truncated=bool(reply.get("truncated")), seq=seq,
                          extra={"exec_s": reply.get("exec_s")})

    def _desync(self, seq: int, t0: float, detail: str) -> ExecResult:
        logger.warning("sandbox session desynchronised and killed: %s", detail)
        return ExecResult(Status.CRASHED, error=f"SandboxCrash: protocol desynchronised ({detail})",
                          duration_s=time.monotonic() - t0, session_lost=True, seq=seq)

    def _lose(self, proc: _SessionProcess) -> None:
        proc.kill()
        proc.close()
        self._proc = None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._proc is not None:
                self._lose(self._proc)

    def __enter__(self) -> "Session":
        return self

    def __del__(self) -> None:  # best effort; prefer close()/with
        proc = getattr(self, "_proc", None)
        if proc is not None:
            proc.kill()
            proc.close()

    def __exit__(self, *exc) -> None:
        self.close()


_per_process: dict[int, Sandbox] = {}
_per_process_lock = threading.Lock()


def get_sandbox(config: SandboxConfig | None = None) -> Sandbox:
    """The started Sandbox of the calling process (created on first use)."""
    with _per_process_lock:
        sandbox = _per_process.get(os.getpid())
        if sandbox is None or not sandbox.alive:
            sandbox = Sandbox(config).start()
            _per_process[os.getpid()] = sandbox
        return sandbox


def doctor(config: SandboxConfig | None = None) -> IsolationReport:
    """Start a server without enforcing the minimum, return its isolation report, stop it."""
    sandbox = Sandbox(config, enforce_minimum=False)
    try:
        sandbox.start()
        assert sandbox.report is not None
        return sandbox.report
    finally:
        sandbox.close()
