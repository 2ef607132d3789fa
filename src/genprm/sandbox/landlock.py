"""Landlock (Linux LSM) through raw syscalls with ctypes: files, TCP and scoping.

Usage (in the process to restrict, after PR_SET_NO_NEW_PRIVS)::

    abi = landlock.abi_version()          # 0 when unavailable
    enforced = landlock.restrict(read_dirs=[...], write_dirs=[scratch], abi=abi)
    # enforced == {"fs": True, "net": abi >= 4, "scope": abi >= 6}

Everything not listed is denied: reading outside ``read_dirs`` (``/etc``,
``/proc``, ``/home``, other sessions' scratch), any write outside ``write_dirs``,
binding or connecting TCP ports (ABI >= 4), and sending signals or connecting to
abstract unix sockets outside the process's own Landlock domain (ABI >= 6).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_ABI1_FS = (1 << 13) - 1
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2

_PR_SET_NO_NEW_PRIVS = 38


class LandlockError(OSError):
    pass


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """Landlock ABI of the running kernel, 0 when Landlock is absent or disabled."""
    libc = _libc()
    v = libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
                     ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return int(v) if v > 0 else 0


def fs_rights(abi: int) -> int:
    rights = _ABI1_FS
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"{what} failed: {errno.errorcode.get(err, err)}")
    return rc


def restrict(read_dirs: list[str], write_dirs: list[str], abi: int) -> dict[str, bool]:
    """Restrict the calling process for good; return which parts were enforced."""
    if abi < 1:
        raise LandlockError(errno.ENOSYS, "Landlock is not available")
    libc = _libc()
    handled_fs = fs_rights(abi)
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("=Q", handled_fs)
    attr_buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), attr_buf,
                                  ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        read_rights = EXECUTE | READ_FILE | READ_DIR
        for path, rights in [(p, read_rights) for p in read_dirs] + [(p, handled_fs) for p in write_dirs]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a listed path that does not exist grants nothing
            try:
                if not os.path.isdir(path):
                    rights &= EXECUTE | READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
                rule = struct.pack("=Qi", rights & handled_fs, fd)
                rule_buf = ctypes.create_string_buffer(rule, len(rule))
                _check(libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset),
                                    ctypes.c_int(_RULE_PATH_BENEATH), rule_buf, ctypes.c_uint32(0)),
                       f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        _check(libc.syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return {"fs": True, "net": bool(handled_net), "scope": bool(scoped)}
