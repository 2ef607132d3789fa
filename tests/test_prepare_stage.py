"""The prepare stage end to end: the library call, the stage script, and DVC in a temp git repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from genprm.prepare import prepare
from genprm.records import Problem, ProcessBenchSample, read_records
from genprm.world.problems import WorldConfig


def test_world_train_is_decontaminated_against_eval():
    # a tiny world makes collisions certain
    cfg = WorldConfig(min_ops=1, max_ops=1, max_operand=3, max_value=99)
    data = prepare(
        [{"name": "world", "n": 60, "seed": 1}],
        {"test": {"name": "world", "n": 5, "seed": 2}},
        world=cfg,
    )
    eval_texts = {p.problem for p in data.eval["test"]}
    assert not any(p.problem in eval_texts for p in data.train)
    removed = data.stats["train"]["loaded"] - data.stats["train"]["kept"]
    assert removed > 0 and data.stats["train"]["kept"] == len(data.train)
    assert len({p.problem for p in data.train}) == len(data.train)  # duplicates within train dropped too


def test_world_source_shape_changes_that_source_only():
    cfg = WorldConfig(min_ops=2, max_ops=4, max_operand=9, max_value=20)
    data = prepare(
        [{"name": "world", "n": 40, "seed": 1}],
        {"hard": {"name": "world", "n": 20, "seed": 2, "shape": {"min_ops": 4, "max_ops": 4}}},
        world=cfg,
    )
    assert {p.metadata["n_ops"] for p in data.eval["hard"]} == {4}
    assert len({p.metadata["n_ops"] for p in data.train}) > 1  # the training source keeps the world's shape
    with pytest.raises(ValueError, match="max_ops"):  # the merged shape is validated (min_ops > max_ops)
        prepare([{"name": "world", "n": 5, "seed": 1, "shape": {"min_ops": 5}}], {}, world=cfg)


def test_real_sources(shared_data):
    data = prepare(
        [{"name": "math", "source": str(shared_data / "math"), "split": "train"}],
        {
            "math_test": {"name": "math", "source": str(shared_data / "math"), "split": "test"},
            "pb": {"name": "processbench", "source": str(shared_data / "processbench"), "split": "gsm8k"},
        },
    )
    assert all(isinstance(s, ProcessBenchSample) for s in data.eval["pb"]) and len(data.eval["pb"]) == 400
    assert len(data.eval["math_test"]) == 5000
    # MATH train and test share one problem text (documented in shared/data/SOURCES.md)
    assert data.stats["train"]["loaded"] - data.stats["train"]["kept"] >= 1
    assert isinstance(data.train[0], Problem)


def _run_stage(cwd, *args):
    return subprocess.run(
        [sys.executable, "stages/prepare.py", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _copy_project(repo, dest):
    for name in ("stages", "src", "params.yaml", "dvc.yaml"):
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)


def test_stage_script_outputs_are_deterministic(repo, tmp_path):
    _copy_project(repo, tmp_path)
    r = _run_stage(tmp_path)
    assert r.returncode == 0, r.stderr
    first = (tmp_path / "data/prepared/train.jsonl").read_bytes()
    metrics = json.loads((tmp_path / "metrics/prepare.json").read_text())
    assert metrics["train"]["kept"] == len(read_records(tmp_path / "data/prepared/train.jsonl", Problem))
    assert metrics["eval"] == {"world_test": 300, "world_hard": 60}
    r = _run_stage(tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data/prepared/train.jsonl").read_bytes() == first


def test_stage_rejects_bad_params_without_writing(repo, tmp_path):
    _copy_project(repo, tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["prepare"]["train"][0]["n"] = "lots"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = _run_stage(tmp_path)
    assert r.returncode != 0
    assert "prepare.train.0.n" in r.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_dvc_repro_in_a_temp_git_repo(repo, tmp_path):
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable))
    assert dvc, "dvc is part of the locked environment"
    _copy_project(repo, tmp_path)
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])

    def run(*cmd):
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
        return r.stdout

    run("git", "init", "-q")
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    run(dvc, "init", "-q")
    # the prepare stage alone (later stages train models: the full demo is `make demo`)
    run(dvc, "repro", "prepare")
    assert (tmp_path / "data/prepared/train.jsonl").exists()
    assert "prepare" in run(dvc, "metrics", "show")
    # nothing changed: nothing re-runs
    assert "didn't change" in run(dvc, "repro", "prepare")
    # a params change touching prepare re-runs it
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["prepare"]["eval"]["world_test"]["n"] = 50
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = run(dvc, "repro", "prepare")
    assert "Running stage 'prepare'" in out
    assert json.loads((tmp_path / "metrics/prepare.json").read_text())["eval"]["world_test"] == 50
