"""API behaviour of the sandbox: sessions, persistence, statuses, GenPRM output conventions."""

from __future__ import annotations

import concurrent.futures
import os
import threading

import pytest

from genprm.sandbox import (
    ExecResult,
    InsufficientIsolation,
    IsolationLevel,
    Sandbox,
    SandboxConfig,
    Status,
    code_output_block,
    format_code_output,
)


def test_namespace_persists_across_steps(sandbox):
    with sandbox.session() as s:
        assert s.run("x = 41").status is Status.OK
        r = s.run("print(x + 1)")
        assert (r.status, r.stdout) == (Status.OK, "42\n")
        assert r.seq == 2 and r.duration_ms > 0


def test_sessions_do_not_share_namespaces(sandbox):
    with sandbox.session() as a, sandbox.session() as b:
        a.run("secret = 1")
        r = b.run("print(secret)")
        assert r.status is Status.ERROR
        assert r.error == "NameError: name 'secret' is not defined"
        assert a.pid != b.pid


def test_preimported_math_stack(sandbox):
    r = sandbox.run_once(
        "import sympy as sp, numpy as np, scipy.special as ss\n"
        "x = sp.Symbol('x')\nprint(sp.factor(x**2 - 1))\nprint(int(np.arange(5).sum()), int(ss.comb(5, 2)))")
    assert r.status is Status.OK, r
    assert r.stdout == "(x - 1)*(x + 1)\n10 10\n"


def test_error_message_shape_matches_released_genprm(sandbox):
    with sandbox.session() as s:
        r = s.run("print('before')\n1/0")
        assert r.status is Status.ERROR
        assert r.error == "ZeroDivisionError: division by zero"
        assert r.stdout == "before\n"  # kept in the result ...
        assert format_code_output(r) == "Code execute Error: ZeroDivisionError: division by zero"  # ... not shown
        r = s.run("def f(:\n  pass")
        assert r.error.startswith("SyntaxError: ")


def test_ok_output_is_stripped_and_wrapped(sandbox):
    r = sandbox.run_once("print()\nprint('  7  ')\nprint()")
    assert format_code_output(r) == "7"
    assert code_output_block(r) == "[Code Output]\n\n```\n7\n```\n"


def test_namespace_is_plain_dict_like_release(sandbox):
    # The release exec'd into {}: __name__ resolves to the builtins module's name.
    r = sandbox.run_once("print(__name__)")
    assert r.stdout == "builtins\n"


def test_soft_timeout_keeps_namespace(sandbox):
    with sandbox.session() as s:
        s.run("y = 5")
        r = s.run("while True:\n    pass", timeout=0.3)
        assert r.status is Status.TIMEOUT and not r.session_lost
        assert format_code_output(r) == "Code execute time out: Code execution timed out"
        assert s.run("print(y)").stdout == "5\n"


def test_stderr_is_captured_separately(sandbox):
    r = sandbox.run_once("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")
    assert format_code_output(r) == "out"


def test_concurrent_sessions_from_threads(sandbox):
    def work(i: int) -> str:
        with sandbox.session() as s:
            s.run(f"v = {i}")
            return s.run("print(v * 2)").stdout

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(work, range(24)))
    assert outs == [f"{2 * i}\n" for i in range(24)]


def test_one_session_used_from_two_threads_is_serialised(sandbox):
    with sandbox.session() as s:
        s.run("n = 0")
        threads = [threading.Thread(target=lambda: [s.run("n += 1") for _ in range(20)]) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s.run("print(n)").stdout == "40\n"


def test_closed_session_refuses_to_run(sandbox):
    s = sandbox.session()
    s.run("pass")
    s.close()
    with pytest.raises(Exception, match="closed"):
        s.run("pass")


def test_report_reaches_strict_here(sandbox):
    report = sandbox.report
    assert report is not None
    assert report.meets(IsolationLevel.STANDARD)
    assert all(report.checks.values()), report.checks
    if os.geteuid() == 0:
        assert report.layers["uid"].ok and "dropped" in report.layers["uid"].detail
    assert "isolation level" in report.format()


def test_refuses_to_start_below_minimum():
    cfg = SandboxConfig(min_isolation=IsolationLevel.STANDARD, pool_size=0, preimports=(),
                        disabled_layers=("landlock",))
    with pytest.raises(InsufficientIsolation) as info:
        Sandbox(cfg).start()
    assert info.value.report.level is IsolationLevel.BASIC
    assert "below the configured minimum standard" in str(info.value)
    assert "landlock_fs" in str(info.value)


def test_unsafe_mode_is_logged(caplog):
    cfg = SandboxConfig(unsafe=True, pool_size=0, preimports=())
    with caplog.at_level("WARNING", logger="genprm.sandbox"):
        with Sandbox(cfg) as sb:
            assert sb.report.level is IsolationLevel.NONE
            assert sb.run_once("print(1)").stdout == "1\n"
    assert any("UNSAFE" in rec.getMessage() for rec in caplog.records)


def test_sandbox_refuses_use_from_forked_child(sandbox):
    pid = os.fork()
    if pid == 0:
        try:
            sandbox.session().run("pass")
            os._exit(1)
        except Exception as exc:  # noqa: BLE001
            os._exit(0 if "another process" in str(exc) else 2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_exec_result_json_shape():
    r = ExecResult(Status.OK, stdout="1\n", duration_s=0.0015)
    assert r.to_json_dict() == {"status": "ok", "stdout": "1\n", "error": None, "duration_ms": 1.5}


def test_config_validation(test_config):
    with pytest.raises(ValueError):
        SandboxConfig(timeout_s=0)
    assert SandboxConfig(min_isolation="strict").min_isolation is IsolationLevel.STRICT
    assert test_config.pool_size == 2


def test_read_dirs_never_expose_scratch_or_broad_dirs():
    from genprm.sandbox.isolation import read_dirs_for_interpreter

    dirs = read_dirs_for_interpreter("/tmp/genprm-sandbox-x")
    assert "/tmp" not in dirs and "/" not in dirs and "/etc" not in dirs
    assert not any("/tmp/genprm-sandbox-x".startswith(d.rstrip("/") + "/") for d in dirs)


def test_scratch_is_private_and_removed_after_close(sandbox):
    import time

    with sandbox.session() as s:
        r = s.run("open('f.txt', 'w').write('data')\nimport os\nprint(oct(os.stat('.').st_mode & 0o777))")
        scratch = s.scratch
        assert r.stdout == "0o700\n" and os.path.isfile(os.path.join(scratch, "f.txt"))
    deadline = time.monotonic() + 5
    while os.path.exists(scratch) and time.monotonic() < deadline:
        time.sleep(0.05)
        sandbox.ping()  # the server reaps and cleans up between requests
    assert not os.path.exists(scratch)


def test_get_sandbox_is_a_per_process_singleton():
    from genprm.sandbox import get_sandbox

    cfg = SandboxConfig(pool_size=0, preimports=())
    first = get_sandbox(cfg)
    try:
        assert get_sandbox(cfg) is first and first.alive
        assert first.run_once("print('one')").stdout == "one\n"
    finally:
        first.close()
    assert not first.alive
