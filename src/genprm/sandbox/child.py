"""The session process: isolate itself, then execute snippets in one persistent namespace.

Runs only inside a process forked by the fork server (:mod:`.server`), never in
the caller's process.  :func:`session_main` never returns.  The namespace is a
plain ``{}`` like the released GenPRM ``CodeExecutor`` (so ``__name__`` is
``'builtins'`` there too); stdout/stderr are captured per snippet into capped
buffers; a SIGALRM timer raises ``TimeoutError('Code execution timed out')`` at
the snippet's time-out (the client SIGKILLs the process if the snippet survives
that); C-level writes to fds 1 and 2 go to /dev/null.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time

from .isolation import ChildPlan, IsolationError, apply_layers, lazy_import_status, self_tests
from .output import TRUNCATION_MARKER
from .protocol import PeerClosed, ProtocolError, recv_frame, send_frame

SESSION_FD = 3
MAX_REQUEST_BYTES = 64 * 1024 * 1024


class SnippetTimeout(TimeoutError):
    """Raised inside the snippet by the sandbox's timer."""


class OutputLimitExceeded(BaseException):
    """Raised inside the snippet when it writes past the output cap."""


class _CappedSink(io.RawIOBase):
    def __init__(self, cap: int) -> None:
        super().__init__()
        self.data = bytearray()
        self.cap = cap
        self.overflow = False

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        n = len(b)
        room = self.cap - len(self.data)
        if n > room:
            if room > 0:
                self.data += bytes(memoryview(b)[:room])
            self.overflow = True
            raise OutputLimitExceeded()
        self.data += b
        return n

    def text(self) -> str:
        text = bytes(self.data).decode("utf-8", errors="replace")
        if self.overflow:
            text += "\n" + TRUNCATION_MARKER.format(limit=self.cap)
        return text


class _Alarm:
    armed = False

    def handler(self, signum, frame) -> None:
        if self.armed:
            self.armed = False
            raise SnippetTimeout("Code execution timed out")


def _clean(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[:limit] + " ... [truncated]"
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _describe(exc: BaseException, limit: int) -> str:
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not kill the session
        message = "<unprintable message>"
    return _clean(f"{type(exc).__name__}: {message}", limit)


def run_snippet(namespace: dict, code: str, timeout: float, cap: int, alarm: _Alarm) -> dict:
    out, err = _CappedSink(cap), _CappedSink(cap)
    status, error = "ok", None
    signal.signal(signal.SIGALRM, alarm.handler)
    saved = sys.stdout, sys.stderr
    t0 = time.perf_counter()
    try:
        try:
            sys.stdout = io.TextIOWrapper(out, encoding="utf-8", errors="backslashreplace", write_through=True)
            sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True)
            alarm.armed = True
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            exec(compile(code, "<string>", "exec"), namespace)
        finally:
            alarm.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except SnippetTimeout:
        status, error = "timeout", "TimeoutError: Code execution timed out"
    except OutputLimitExceeded:
        status = "output_limit"
    except MemoryError as exc:
        status, error = "memory", _describe(exc, cap)
    except BaseException as exc:  # noqa: BLE001 - SystemExit etc. are snippet errors too
        status, error = "error", _describe(exc, cap)
    finally:
        sys.stdout, sys.stderr = saved
    if out.overflow and status != "timeout":
        status = "output_limit"
    return {"status": status, "stdout": out.text(), "stderr": err.text(), "error": error,
            "truncated": out.overflow, "exec_s": time.perf_counter() - t0}


def _serve(fd: int, plan: ChildPlan) -> None:
    namespace: dict = {}
    alarm = _Alarm()
    cap = plan.config.max_output_bytes
    while True:
        try:
            request = recv_frame(fd, None, MAX_REQUEST_BYTES)
        except (PeerClosed, ProtocolError, OSError):
            return
        seq = request.get("seq")
        code = request.get("code")
        timeout = float(request.get("timeout", plan.config.timeout_s))
        try:
            if not isinstance(code, str):
                raise ValueError("request without code")
            reply = run_snippet(namespace, code, timeout, cap, alarm)
        except SnippetTimeout:  # timer fired during bookkeeping after the snippet
            reply = {"status": "timeout", "stdout": "", "stderr": "",
                     "error": "TimeoutError: Code execution timed out", "truncated": False, "exec_s": timeout}
        except MemoryError:
            reply = {"status": "memory", "stdout": "", "stderr": "", "error": "MemoryError: ",
                     "truncated": False, "exec_s": 0.0}
        reply["seq"] = seq
        try:
            send_frame(fd, reply)
        except MemoryError:
            send_frame(fd, {"seq": seq, "status": "memory", "stdout": "", "stderr": "",
                            "error": "MemoryError: ", "truncated": False, "exec_s": 0.0})


def _redirect_std_fds() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    if devnull > 2:
        os.close(devnull)


def session_main(sock_fd: int, plan: ChildPlan, scratch: str, probe: bool = False) -> None:
    """Entry point in the forked child; exits the process, never returns."""
    code = 0
    try:
        if sock_fd != SESSION_FD:
            os.dup2(sock_fd, SESSION_FD)
        os.closerange(SESSION_FD + 1, max(os.sysconf("SC_OPEN_MAX"), 1 << 16))
        _redirect_std_fds()
        try:
            layers = apply_layers(plan, scratch)
        except IsolationError as exc:
            send_frame(SESSION_FD, {"ready": False, "error": str(exc)})
            os._exit(71)
        hello = {"ready": True, "pid": os.getpid(), "scratch": scratch,
                 "layers": {k: {"ok": v.ok, "detail": v.detail} for k, v in layers.items()}}
        if probe:
            hello["checks"] = self_tests(plan, layers, scratch)
            hello["lazy_imports"], hello["lazy_imports_detail"] = lazy_import_status(plan)
            send_frame(SESSION_FD, hello)
            os._exit(0)
        # Warm up: touch the exec/capture path once so its copy-on-write faults are paid now,
        # while the session waits in the pool, not on the client's first snippet.
        run_snippet({}, "pass", 1.0, plan.config.max_output_bytes, _Alarm())
        send_frame(SESSION_FD, hello)
        _serve(SESSION_FD, plan)
    except BaseException:  # noqa: BLE001 - nothing may escape into the server's code
        code = 72
    os._exit(code)
