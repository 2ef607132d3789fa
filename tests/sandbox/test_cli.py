"""The ``genprm sandbox`` CLI functions, called through a small argparse parser."""

from __future__ import annotations

import argparse
import json

import pytest

from genprm.sandbox.cli import add_parser


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="genprm")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_run_files_in_one_session(tmp_path, capsys):
    a = tmp_path / "a.py"
    b = tmp_path / "b.py"
    c = tmp_path / "c.py"
    a.write_text("x = 20\nprint('a')\n")
    b.write_text("print(x + 22)\n")
    c.write_text("while True:\n    pass\n")
    rc = _run(["sandbox", "run", str(a), str(b), str(c), "--timeout", "0.5", "--memory-mb", "256"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 1  # the last file timed out
    assert [line["status"] for line in lines] == ["ok", "ok", "timeout"]
    assert lines[1]["stdout"] == "42\n"
    assert lines[2]["error"] == "TimeoutError: Code execution timed out"
    assert set(lines[0]) == {"file", "status", "stdout", "error", "duration_ms"}


@pytest.mark.slow
def test_run_all_ok_exits_zero(tmp_path, capsys):
    f = tmp_path / "ok.py"
    f.write_text("print(sum(range(10)))")
    assert _run(["sandbox", "run", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["stdout"] == "45\n"


@pytest.mark.slow
def test_doctor_reports_and_exits_zero_here(capsys):
    rc = _run(["sandbox", "doctor", "--min-isolation", "standard"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "isolation level:" in out and "minimum standard: met" in out
    assert "[ok] seccomp" in out


def test_sandbox_without_subcommand_prints_help(capsys):
    assert _run(["sandbox"]) == 2
    assert "doctor" in capsys.readouterr().out


@pytest.mark.slow
def test_doctor_fails_when_minimum_not_met(capsys):
    rc = _run(["sandbox", "doctor", "--min-isolation", "standard", "--disable-layer", "landlock"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "minimum standard: NOT MET" in out and "disabled by config" in out


@pytest.mark.slow
def test_run_refuses_below_minimum(tmp_path, capsys, caplog):
    f = tmp_path / "ok.py"
    f.write_text("print(1)")
    with caplog.at_level("ERROR", logger="genprm.sandbox.cli"):
        rc = _run(["sandbox", "run", str(f), "--min-isolation", "strict", "--disable-layer", "seccomp"])
    assert rc == 2
    assert capsys.readouterr().out == ""  # nothing ran
    assert any("refuses to start" in rec.getMessage() for rec in caplog.records)
