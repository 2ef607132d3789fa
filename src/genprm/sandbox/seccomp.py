"""A seccomp-BPF deny-list filter for session processes, built with ctypes only.

The filter is compiled once (``build_filter()`` returns the raw BPF program as
bytes, so the fork server builds it before forking) and installed in each session
with ``install(program)``.  Denied syscalls fail with EPERM, so Python raises a
clean ``PermissionError``; a foreign architecture (i386 ``int 0x80``) or the x32
ABI kills the process.  x86_64 only; :func:`supported` says whether this machine is.

What it blocks: new processes and threads (fork/vfork/clone/clone3/exec*), every
socket (so no TCP, UDP, DNS, netlink or unix sockets, whatever the namespaces
say), namespaces and mounts, uid/gid/capability changes, raising rlimits
(``setrlimit``, ``prlimit64`` with a new limit), signals to other processes
(kill/tkill/tgkill/pidfd), ptrace and cross-process memory access, SysV IPC,
memfd, io_uring, bpf, perf, keyrings, module loading, clock and host changes.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# x86_64 syscall numbers.
DENIED_SYSCALLS: dict[str, int] = {
    # processes, threads, exec
    "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "clone3": 435, "execveat": 322,
    # sockets
    "socket": 41, "socketpair": 53, "connect": 42, "accept": 43, "bind": 49, "listen": 50,
    "accept4": 288,
    # namespaces, mounts, root changes
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
    "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    # credentials
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116,
    "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capset": 126,
    # limits
    "setrlimit": 160,
    # other processes
    "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "pidfd_open": 434, "pidfd_send_signal": 424,
    "pidfd_getfd": 438, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "kcmp": 312, "process_madvise": 440,
    # shared memory and IPC that escape RLIMIT_AS or the scratch dir
    "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "shmat": 30, "shmctl": 31,
    "semget": 64, "semop": 65, "semctl": 66, "msgget": 68, "msgsnd": 69, "msgrcv": 70,
    "msgctl": 71, "mknod": 133, "mknodat": 259,
    # kernel attack surface
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 250, "add_key": 248,
    "request_key": 249, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "kexec_load": 246, "kexec_file_load": 320, "reboot": 169, "swapon": 167,
    "swapoff": 168, "acct": 163, "quotactl": 179, "syslog": 103, "personality": 135,
    "sethostname": 170, "setdomainname": 171, "settimeofday": 164, "clock_settime": 227,
    "adjtimex": 159, "clock_adjtime": 305, "iopl": 172, "ioperm": 173,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "modify_ldt": 154,
    "vhangup": 153, "uselib": 134, "lookup_dcookie": 212, "fanotify_init": 300,
    "move_pages": 279, "migrate_pages": 256, "mbind": 237,
}
_PRLIMIT64 = 302

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JA = 0x05
_RET_K = 0x06
_OFF_NR, _OFF_ARCH = 0, 4
_OFF_ARG2_LO, _OFF_ARG2_HI = 16 + 8 * 2, 16 + 8 * 2 + 4

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class SeccompError(OSError):
    pass


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def build_filter() -> bytes:
    """Return the BPF program (an array of ``struct sock_filter``) as bytes."""
    # Instructions as (code, jt_label_or_offset, jf_label_or_offset, k); labels resolved below.
    prog: list[tuple[int, object, object, int]] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 0, "kill", _AUDIT_ARCH_X86_64),
        (_LD_W_ABS, 0, 0, _OFF_NR),
        (_JGE_K, "kill", 0, _X32_BIT),
    ]
    for nr in sorted(set(DENIED_SYSCALLS.values())):
        prog.append((_JEQ_K, "deny", 0, nr))
    prog += [
        (_JEQ_K, 0, "allow", _PRLIMIT64),
        # prlimit64(pid, resource, new_limit, old_limit): only reading (new_limit == NULL) is allowed
        (_LD_W_ABS, 0, 0, _OFF_ARG2_LO),
        (_JEQ_K, 0, "deny", 0),
        (_LD_W_ABS, 0, 0, _OFF_ARG2_HI),
        (_JEQ_K, 0, "deny", 0),
    ]
    labels = {"allow": len(prog), "deny": len(prog) + 1, "kill": len(prog) + 2}
    prog += [
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(prog):
        jt_off = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf_off = labels[jf] - i - 1 if isinstance(jf, str) else jf
        if not (0 <= jt_off < 256 and 0 <= jf_off < 256):
            raise SeccompError(errno.E2BIG, "seccomp jump out of range")
        out += struct.pack("=HBBI", code, jt_off, jf_off, k)
    return bytes(out)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install ``program`` in the calling process (irreversible; sets no_new_privs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(err, f"PR_SET_NO_NEW_PRIVS failed: {errno.errorcode.get(err, err)}")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(err, f"PR_SET_SECCOMP failed: {errno.errorcode.get(err, err)}")
