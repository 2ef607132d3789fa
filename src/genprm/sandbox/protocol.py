"""Wire format between the client and a session process (and the fork server).

Every message is a frame: a 4-byte big-endian length, then that many bytes of
UTF-8 JSON.  JSON (never pickle) because the client parses what an untrusted
process wrote.  Requests carry a sequence number ``seq``; a reply whose ``seq``
differs from the request's, an oversized frame or undecodable JSON means the
session is desynchronised (e.g. a snippet wrote a fake reply into its own
socket) and the client kills it.

Usage::

    send_frame(fd, {"seq": 1, "code": "print(1)", "timeout": 5.0})
    reply = recv_frame(fd, deadline=time.monotonic() + 5.5, max_bytes=1 << 20)
"""

from __future__ import annotations

import array
import dataclasses
import json
import os
import select
import socket
import struct
import time

from .config import SandboxConfig

_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


class FrameTimeout(Exception):
    """No complete frame arrived before the deadline."""


class PeerClosed(Exception):
    """The peer closed its end (the process died or closed the socket)."""


def encode_frame(obj: dict) -> bytes:
    payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(payload)) + payload


def send_frame(fd: int, obj: dict) -> None:
    data = memoryview(encode_frame(obj))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    need = n
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while need:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout()
            if not poller.poll(max(1, int(left * 1000) + 1)):
                continue
        chunk = os.read(fd, min(need, 1 << 20))
        if not chunk:
            raise PeerClosed()
        chunks.append(chunk)
        need -= len(chunk)
    return b"".join(chunks)


def recv_frame(fd: int, deadline: float | None = None, max_bytes: int = 1 << 24) -> dict:
    """Read one frame; raise FrameTimeout, PeerClosed or ProtocolError."""
    (length,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if length > max_bytes:
        raise ProtocolError(f"frame of {length} bytes exceeds the {max_bytes}-byte limit")
    payload = _read_exact(fd, length, deadline)
    try:
        obj = json.loads(payload.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not a JSON object")
    return obj


# -- control channel (client <-> fork server, SOCK_SEQPACKET, one JSON object per message) --
CTL_MAX = 1 << 20


def config_to_dict(config: SandboxConfig) -> dict:
    data = dataclasses.asdict(config)
    data["min_isolation"] = int(config.min_isolation)
    data["preimports"] = list(config.preimports)
    data["disabled_layers"] = list(config.disabled_layers)
    return data


def config_from_dict(data: dict) -> SandboxConfig:
    data = dict(data)
    data["preimports"] = tuple(data.get("preimports", ()))
    data["disabled_layers"] = tuple(data.get("disabled_layers", ()))
    return SandboxConfig(**data)


def ctl_send(sock: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    payload = json.dumps(obj).encode()
    if fds:
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(payload)


def ctl_recv(sock: socket.socket, maxfds: int = 0) -> tuple[dict | None, list[int]]:
    """Receive one control message; (None, []) on EOF."""
    if maxfds:
        data, fds, _flags, _addr = socket.recv_fds(sock, CTL_MAX, maxfds)
    else:
        data, fds = sock.recv(CTL_MAX), []
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data.decode()), list(fds)
