"""The red-team subset again, as an unprivileged user (``nobody``), when the tests run as root.

Needs an interpreter that ``nobody`` can execute (the venv's base interpreter may live
under a 0700 /root); a system ``python3`` of the same minor version is used.  When the
suite itself runs unprivileged the main red-team tests already cover this case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
NOBODY = 65534


def _world_usable_python() -> str | None:
    for cand in (sys.executable, shutil.which("python3.11"), "/usr/bin/python3.11", "/usr/bin/python3"):
        if not cand or not os.path.exists(cand):
            continue
        try:
            probe = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2])"], user=NOBODY,
                                   group=NOBODY, extra_groups=[], capture_output=True, text=True,
                                   cwd="/tmp", env={"PATH": "/usr/bin:/bin"}, timeout=30)
        except OSError:  # e.g. the interpreter lives under a 0700 home
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return cand
    return None


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="already unprivileged: the main red-team suite covers it")
def test_redteam_subset_as_nobody():
    python = _world_usable_python()
    if python is None:
        pytest.skip("no Python interpreter executable by uid nobody on this machine")
    proc = subprocess.run(
        [python, str(HERE / "unprivileged_redteam.py")], user=NOBODY, group=NOBODY, extra_groups=[],
        capture_output=True, text=True, cwd="/tmp", timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["euid"] == NOBODY
    assert out["level"] == "strict", out
    assert "user namespace" in out["uid_detail"]
    res = out["results"]
    for name, r in res.items():
        assert r["healthy_after"], (name, r)
    for name in ("fork", "exec", "udp", "read_passwd", "write_tmp", "kill_server", "raise_rlimit"):
        assert res[name]["status"] == "error", (name, res[name])
    assert res["read_passwd"]["error"].startswith("PermissionError")
    assert "root:" not in res["read_passwd"]["stdout"]
    assert res["thread"]["status"] == "error"
    assert res["memory_bomb"]["status"] == "memory"
    assert res["infinite_loop"]["status"] == "timeout"
    assert res["catch_timeout"]["status"] == "timeout"
    assert res["segfault"]["status"] == "crashed"
    assert not os.path.exists("/tmp/genprm_unpriv_escape")
