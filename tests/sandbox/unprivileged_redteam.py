"""Script (not a test module): a representative red-team subset, run by test_unprivileged.py
as an unprivileged uid with a world-readable interpreter.  Prints one JSON object."""

from __future__ import annotations

import json
import os
import sys

from genprm.sandbox import IsolationLevel, Sandbox, SandboxConfig

SNIPPETS = {
    "fork": "import os\nos.fork()",
    "exec": "import os\nos.execv('/bin/sh', ['sh', '-c', 'true'])",
    "thread": "import threading\nthreading.Thread(target=print).start()",
    "udp": "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('1.1.1.1', 53))",
    "read_passwd": "print(open('/etc/passwd').read())",
    "write_tmp": "open('/tmp/genprm_unpriv_escape', 'w').write('x')",
    "kill_server": "import os\nos.kill(os.getppid(), 9)",
    "raise_rlimit": "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
    "memory_bomb": "x = bytearray(8 * 1024 ** 3)",
    "infinite_loop": "while True:\n    pass",
    "catch_timeout": "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass",
    "segfault": "import ctypes\nctypes.string_at(0)",
}


def main() -> int:
    cfg = SandboxConfig(timeout_s=0.5, kill_grace_s=0.5, memory_mb=256, pool_size=1,
                        min_isolation=IsolationLevel.STRICT, preimports=("ctypes", "socket", "resource"))
    out: dict = {"euid": os.geteuid(), "results": {}}
    with Sandbox(cfg) as sb:
        out["level"] = sb.report.level.name.lower()
        out["uid_detail"] = sb.report.layers["uid"].detail
        for name, code in SNIPPETS.items():
            r = sb.run_once(code)
            healthy = sb.run_once("print(6 * 7)")
            out["results"][name] = {"status": r.status.value, "error": r.error, "stdout": r.stdout[:200],
                                    "healthy_after": healthy.stdout == "42\n" and sb.alive}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
