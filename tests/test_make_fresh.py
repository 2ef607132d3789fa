"""``make fresh``: remove every stage's resumable state (and only that), then ``dvc repro -f``.

``dvc repro`` (even with ``-f``) resumes from the shards in ``work/rollout``, ``work/montecarlo``
and the checkpoints in ``work/train``; ``make fresh`` is the from-scratch run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml


def _resume_dirs(make: str) -> list[str]:
    return re.search(r"^RESUME_DIRS \?= (.+)$", make, re.M).group(1).split()


def test_fresh_removes_exactly_the_folders_the_stages_resume_from(repo):
    make = (repo / "Makefile").read_text()
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    shard_dirs = {argv[argv.index("--shard-dir") + 1] for spec in stages.values()
                  if "--shard-dir" in (argv := shlex.split(spec["cmd"]))}
    train_default = re.search(r'"--checkpoints", default="([^"]+)"', (repo / "stages/train.py").read_text()).group(1)
    assert "--checkpoints" not in stages["train"]["cmd"]  # so the script's default is where it resumes from
    assert sorted(_resume_dirs(make)) == sorted(shard_dirs | {train_default})
    recipe = re.search(r"^fresh: venv\n((?:\t.*\n)+)", make, re.M).group(1).split("\n")
    assert [line.strip() for line in recipe if line.strip()] == ["rm -rf $(RESUME_DIRS)", "dvc repro -f"]
    assert re.search(r"^\.PHONY:.*\bfresh\b", make, re.M)
    assert "`make fresh`" in (repo / "README.md").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_fresh_runs_repro_force_after_removing_the_state(repo, tmp_path):
    for name in ("Makefile", "pyproject.toml", "requirements"):
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    log = tmp_path / "dvc.log"
    fake = venv_bin / "dvc"  # stands in for DVC: records its arguments and what work/ holds at that moment
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nls work >> {log}\n")
    fake.chmod(0o755)
    (tmp_path / "venv" / ".genprm-cpu.stamp").touch()  # newer than the lock: `venv` has nothing to do
    for d in ("work/rollout", "work/montecarlo", "work/train/checkpoint-10", "work/other", "data/rollout"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "x").write_text("x")
    r = subprocess.run(["make", "--no-print-directory", "fresh", "VENV=venv", "ENGINE=cpu", f"PYTHON={sys.executable}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert log.read_text().split("\n") == ["repro -f", "other", ""]  # DVC ran once the state was gone
    assert not any((tmp_path / d).exists() for d in ("work/rollout", "work/montecarlo", "work/train"))
    assert (tmp_path / "work/other/x").exists() and (tmp_path / "data/rollout/x").exists()
