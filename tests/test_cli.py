"""The ``genprm`` command line, run as a real subprocess."""

import json
import subprocess
import sys

import pytest


def genprm(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "genprm.cli", *args], capture_output=True, text=True, input=stdin, timeout=120
    )


def test_help_lists_commands():
    r = genprm("--help")
    assert r.returncode == 0
    for cmd in ("grade", "sandbox", "world", "data", "config"):
        assert cmd in r.stdout


def test_world_problems_and_check(tmp_path):
    out = tmp_path / "p.jsonl"
    assert genprm("world", "problems", "--n", "3", "--seed", "5", "--output", str(out)).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    r = genprm("world", "check", "--problem", rows[0]["problem"], "--solution", "-", stdin=rows[0]["solution"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["first_error"] == -1
    r = genprm("world", "check", "--problem", "Compute (3 + 4) * 2.", "--solution", "Step 1: 3 + 4 = 8\nStep 2: 8 * 2 = 16. The answer is 16.")
    res = json.loads(r.stdout)
    assert res["first_error"] == 0 and res["step_errors"] == ["arithmetic", None] and res["final_correct"] is False


def test_config_check(repo, tmp_path):
    assert genprm("config", "check", str(repo / "params.yaml")).returncode == 0
    bad = tmp_path / "p.yaml"
    bad.write_text((repo / "params.yaml").read_text().replace("max_ops: 4", "max_opz: 4"))
    r = genprm("config", "check", str(bad))
    assert r.returncode == 2 and "world.max_opz: unknown key" in r.stderr


def test_data_load(shared_data, tmp_path):
    out = tmp_path / "aime.jsonl"
    r = genprm("data", "load", "aime24", "--source", str(shared_data / "aime24"), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert len(out.read_text().splitlines()) == 30


def test_unknown_dataset_is_a_clear_error(tmp_path):
    r = genprm("data", "load", "math5000", "--output", str(tmp_path / "x.jsonl"))
    assert r.returncode == 2 and "math500" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.jsonl").exists()
