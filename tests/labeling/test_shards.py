"""Shards: selection, merge checks, SIGKILL + resume, several workers + merge (hf backend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genprm.labeling.config import LabelsConfig, MonteCarloConfig, RolloutConfig
from genprm.labeling.runner import labels_stage, montecarlo_stage, rollout_stage
from genprm.labeling.shards import ShardError, merge_shards, prepare_dir, select_shards, shard_path, shard_ranges
from genprm.records import Solution, StepValues, read_records, write_records

REPO = Path(__file__).resolve().parents[2]


def test_shard_ranges_and_selection() -> None:
    assert shard_ranges(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]
    assert shard_ranges(0, 3) == []
    picks = [select_shards(5, i, 2) for i in range(2)]
    assert picks == [[0, 2, 4], [1, 3]]
    assert select_shards(5) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        select_shards(5, 2, 2)
    assert shard_path("d", "rollout", 3).name == "rollout-00003.jsonl"


def test_merge_refuses_missing_shards_and_stale_dirs_are_cleared(tmp_path: Path) -> None:
    prepare_dir(tmp_path, "rollout", "fp1", 4, 2)
    write_records(shard_path(tmp_path, "rollout", 0), [])
    (shard_path(tmp_path, "rollout", 0, ".json")).write_text("{}")
    with pytest.raises(ShardError, match="rollout-00001.jsonl"):
        merge_shards(tmp_path, "rollout", 4, 2, Solution)
    prepare_dir(tmp_path, "rollout", "fp1", 4, 2)  # same config: shards stay
    assert shard_path(tmp_path, "rollout", 0).exists()
    prepare_dir(tmp_path, "rollout", "fp2", 4, 2)  # other config: stale shards go
    assert not shard_path(tmp_path, "rollout", 0).exists()


def _rollout_cfg(engine: dict) -> dict:
    return {"engine": engine, "n_problems": 10, "paths_per_round": 4, "max_paths": 16, "keep_correct": 1,
            "keep_incorrect": 1, "temperature": 1.0, "max_tokens": 64, "seed": 5, "shard_size": 2}


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory, world_problems) -> Path:
    path = tmp_path_factory.mktemp("problems") / "train.jsonl"
    write_records(path, world_problems)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, policy_gen, engine_settings, problems_file) -> Path:
    """An uninterrupted single-worker rollout, in process."""
    out = tmp_path_factory.mktemp("reference")
    cfg = RolloutConfig.model_validate(_rollout_cfg(engine_settings))
    metrics = rollout_stage(problems_file, cfg, out / "solutions.jsonl", out / "shards", generator=policy_gen)
    assert metrics["shards"]["done_now"] == 5 and metrics["problems"] == 10
    return out / "solutions.jsonl"


@pytest.mark.slow
def test_two_workers_then_merge_equal_single_run(tmp_path, policy_gen, engine_settings, problems_file, reference) -> None:
    cfg = RolloutConfig.model_validate(_rollout_cfg(engine_settings))
    out = tmp_path / "solutions.jsonl"
    m0 = rollout_stage(problems_file, cfg, out, tmp_path / "shards", shard_index=0, num_shards=2, merge=False,
                       generator=policy_gen)
    assert m0["shards"]["selected"] == 3 and not out.exists()
    with pytest.raises(ShardError):
        rollout_stage(problems_file, cfg, out, tmp_path / "shards", run=False)
    rollout_stage(problems_file, cfg, out, tmp_path / "shards", shard_index=1, num_shards=2, merge=False,
                  generator=policy_gen)
    merged = rollout_stage(problems_file, cfg, out, tmp_path / "shards", run=False)
    assert out.read_bytes() == reference.read_bytes()
    assert merged["problems"] == 10 and merged["kept_problems"] + merged["dropped_problems"] == 10


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, engine_settings, problems_file, reference) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"rollout": _rollout_cfg(engine_settings)}))
    shards = tmp_path / "shards"
    out = tmp_path / "solutions.jsonl"
    cmd = [sys.executable, str(REPO / "stages" / "rollout.py"), "--params", str(params), "--problems",
           str(problems_file), "--out", str(out), "--shard-dir", str(shards), "--metrics", str(tmp_path / "m.json")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "GENPRM_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not shard_path(shards, "rollout", 0).exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no shard written in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = sorted(p.name for p in shards.glob("rollout-0*.jsonl"))
    assert 1 <= len(done) < 5 and not out.exists(), done  # killed mid-way
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.read_bytes() == reference.read_bytes()
    import json

    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["shards"]["done_before"] == len(done) and metrics["shards"]["done_now"] == 5 - len(done)


@pytest.mark.slow
def test_montecarlo_workers_equal_single_run(tmp_path, policy_gen, engine_settings, problems_file, reference) -> None:
    cfg = MonteCarloConfig.model_validate({"engine": engine_settings, "k_thresholds": [[0.1, 8], [1.0, 4]],
                                           "max_tokens": 64, "seed": 2, "shard_size": 1})
    single = tmp_path / "single.jsonl"
    m = montecarlo_stage(problems_file, reference, cfg, single, tmp_path / "a", generator=policy_gen)
    assert m["shards"]["done_now"] == m["shards"]["shards"] >= 1 and m["completions"] > 0
    for i in range(2):
        montecarlo_stage(problems_file, reference, cfg, tmp_path / "x.jsonl", tmp_path / "b", shard_index=i,
                         num_shards=2, merge=False, generator=policy_gen)
    montecarlo_stage(problems_file, reference, cfg, tmp_path / "two.jsonl", tmp_path / "b", run=False)
    assert (tmp_path / "two.jsonl").read_bytes() == single.read_bytes()

    # the labels stage on these values: labels stored, gate passed, quality vs the checker
    labels_cfg = LabelsConfig(gate={"min_positive_share": 0.0, "max_positive_share": 1.0})
    lm = labels_stage(single, reference, labels_cfg, tmp_path / "labeled.jsonl")
    labeled = read_records(tmp_path / "labeled.jsonl", StepValues)
    assert len(labeled) == lm["solutions"] == len(read_records(single, StepValues))
    assert all(set(v.labels) == {"hard", "rpe", "difference"} for v in labeled)
    assert lm["gate"]["failed"] == 0 and "rpe@0.8" in lm["quality"]
