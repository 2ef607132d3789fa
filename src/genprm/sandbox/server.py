"""The fork server: one process per client that pre-imports the math stack and forks sessions.

Started by :class:`genprm.sandbox.Sandbox` as ``python -m genprm.sandbox.server
--ctl-fd N`` with a minimal environment and in its own process session; it
talks to its client over a SOCK_SEQPACKET control socket, one JSON object per
message:

* client ``{"op": "hello", "config": {...}}`` -> ``{"ok": true, "report": {...}, "pid": P}``
  after pre-importing, building the seccomp program and running a probe session.
* client ``{"op": "new"}`` -> ``{"ok": true, "pid": P, "scratch": S}`` plus two fds
  (SCM_RIGHTS): the session's stream socket and a pidfd for the hard kill.
* client ``{"op": "ping"}`` -> ``{"ok": true, "live": n, "pool": n}``.
* EOF or ``{"op": "shutdown"}``: kill every session, delete scratch, exit.

The server keeps ``pool_size`` sessions forked, isolated and waiting, reaps dead
sessions and removes their scratch directories.  It never reads from a session
after handing it out, so nothing a snippet writes reaches the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

from . import landlock, seccomp
from .child import session_main
from .config import SandboxConfig
from .isolation import ChildPlan, library_dirs, read_dirs_for_interpreter
from .protocol import config_from_dict, ctl_recv, ctl_send, recv_frame
from .report import IsolationReport, LayerStatus

logger = logging.getLogger("genprm.sandbox.server")

READY_MAX = 1 << 20  # largest ready frame accepted from a session
READY_TIMEOUT_S = 10.0


class _Pending:
    """A forked, isolated, ready session not yet handed to the client."""

    def __init__(self, pid: int, sock: socket.socket, pidfd: int, scratch: str) -> None:
        self.pid, self.sock, self.pidfd, self.scratch = pid, sock, pidfd, scratch


class ForkServer:
    def __init__(self, ctl: socket.socket, config: SandboxConfig) -> None:
        self.ctl = ctl
        self.config = config
        self.pool: list[_Pending] = []
        self.live: dict[int, str] = {}  # pid -> scratch dir, for every unreaped child
        self.counter = 0
        self.scratch_root = ""
        self.plan: ChildPlan | None = None
        self.fork_failures = 0

    # -- start-up -----------------------------------------------------------
    def prepare(self) -> IsolationReport:
        t0 = time.monotonic()
        failed = []
        for name in self.config.preimports:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - optional modules may be missing
                failed.append(f"{name} ({type(exc).__name__})")
        if failed:
            logger.info("pre-imports that failed: %s", ", ".join(failed))
        gc.collect()
        gc.freeze()  # keep the pre-imported heap shared copy-on-write between sessions
        root = tempfile.mkdtemp(prefix="genprm-sandbox-", dir=self.config.scratch_root)
        os.chmod(root, 0o711)
        self.scratch_root = root
        abi = landlock.abi_version()
        program = seccomp.build_filter() if seccomp.supported() else None
        self.plan = ChildPlan(self.config, os.getpid(), program, abi, read_dirs_for_interpreter(root), None,
                              library_dirs())
        report = self._probe(abi, time.monotonic() - t0, failed)
        if not self.config.unsafe:
            required = frozenset(k for k, v in report.layers.items() if v.ok and k != "hard_kill")
            self.plan = dataclasses.replace(self.plan, required=required)
        return report

    def _probe(self, abi: int, import_s: float, failed: list[str]) -> IsolationReport:
        info = {"kernel": os.uname().release, "python": sys.version.split()[0],
                "executable": sys.executable, "euid": str(os.geteuid()),
                "landlock_abi": str(abi), "preimport_s": f"{import_s:.2f}",
                "preimports_failed": ", ".join(failed) or "none"}
        hard_kill = LayerStatus(hasattr(os, "pidfd_open"), "pidfd_send_signal(SIGKILL)")
        try:
            pending = self._fork(probe=True)
        except Exception as exc:  # noqa: BLE001 - reported, the client decides
            layers = {"hard_kill": hard_kill, "env": LayerStatus(False, f"probe failed: {exc}")}
            return IsolationReport(layers=layers, unsafe=self.config.unsafe, info=info)
        hello = pending.hello
        pending.sock.close()
        os.close(pending.pidfd)
        layers = {k: LayerStatus(bool(v["ok"]), str(v["detail"])) for k, v in hello["layers"].items()}
        layers["hard_kill"] = hard_kill
        return IsolationReport(layers=layers, checks=hello.get("checks", {}), unsafe=self.config.unsafe,
                               lazy_imports=bool(hello.get("lazy_imports", True)),
                               lazy_imports_detail=str(hello.get("lazy_imports_detail", "")), info=info)

    # -- sessions -----------------------------------------------------------
    def _fork(self, probe: bool = False) -> _Pending:
        assert self.plan is not None
        self.counter += 1
        scratch = os.path.join(self.scratch_root, f"s{self.counter}")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            session_main(child.fileno(), self.plan, scratch, probe=probe)
            os._exit(73)
        child.close()
        self.live[pid] = scratch
        pidfd = os.pidfd_open(pid)
        try:
            hello = recv_frame(parent.fileno(), time.monotonic() + READY_TIMEOUT_S, READY_MAX)
        except Exception as exc:
            os.kill(pid, signal.SIGKILL)
            parent.close()
            os.close(pidfd)
            raise RuntimeError(f"session process did not become ready: {type(exc).__name__} {exc}") from None
        if not hello.get("ready"):
            os.kill(pid, signal.SIGKILL)
            parent.close()
            os.close(pidfd)
            raise RuntimeError(f"session isolation failed: {hello.get('error')}")
        pending = _Pending(pid, parent, pidfd, scratch)
        pending.hello = hello  # type: ignore[attr-defined]
        return pending

    def _fill_pool(self) -> None:
        while len(self.pool) < self.config.pool_size and self.fork_failures < 3:
            try:
                self.pool.append(self._fork())
                self.fork_failures = 0
            except Exception as exc:  # noqa: BLE001 - logged, retried on demand
                self.fork_failures += 1
                logger.error("could not pre-fork a session: %s", exc)

    def _reap(self) -> None:
        while self.live:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            scratch = self.live.pop(pid, None)
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

    def _hand_out(self) -> None:
        try:
            pending = self.pool.pop(0) if self.pool else self._fork()
        except Exception as exc:  # noqa: BLE001 - reported to the client
            ctl_send(self.ctl, {"ok": False, "error": str(exc)})
            return
        try:
            ctl_send(self.ctl, {"ok": True, "pid": pending.pid, "scratch": pending.scratch},
                     [pending.sock.fileno(), pending.pidfd])
        finally:
            pending.sock.close()
            os.close(pending.pidfd)

    def serve(self) -> None:
        while True:
            self._fill_pool()
            ready, _, _ = select.select([self.ctl], [], [], 0.5)
            self._reap()
            if not ready:
                continue
            try:
                msg, _ = ctl_recv(self.ctl)
            except (OSError, ValueError):
                msg = None
            if msg is None or msg.get("op") == "shutdown":
                return
            op = msg.get("op")
            if op == "new":
                self.fork_failures = 0
                self._hand_out()
            elif op == "ping":
                ctl_send(self.ctl, {"ok": True, "pid": os.getpid(), "live": len(self.live), "pool": len(self.pool)})
            else:
                ctl_send(self.ctl, {"ok": False, "error": f"unknown op {op!r}"})

    def shutdown(self) -> None:
        for pid in list(self.live):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pending in self.pool:
            pending.sock.close()
            os.close(pending.pidfd)
        self.pool.clear()
        deadline = time.monotonic() + 5
        while self.live and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)
        if self.scratch_root:
            shutil.rmtree(self.scratch_root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="genprm sandbox fork server (started by Sandbox)")
    parser.add_argument("--ctl-fd", type=int, required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format=f"%(levelname)s genprm.sandbox.server[{os.getpid()}]: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl = socket.socket(fileno=args.ctl_fd)
    msg, _ = ctl_recv(ctl)
    if not msg or msg.get("op") != "hello":
        return 2
    config = config_from_dict(msg["config"])
    if config.unsafe:
        logger.warning("UNSAFE MODE: sessions run WITHOUT any isolation layer (debugging only)")
    server = ForkServer(ctl, config)
    try:
        report = server.prepare()
        ctl_send(ctl, {"ok": True, "pid": os.getpid(), "report": report.to_dict()})
        server.serve()
    except Exception as exc:  # noqa: BLE001 - tell the client, then exit
        logger.exception("sandbox server failed")
        try:
            ctl_send(ctl, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        except OSError:
            pass
        return 1
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
