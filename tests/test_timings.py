"""Durations stay out of the DVC-tracked metrics: they go to the untracked ``timings/<stage>.json``.

A rerun with the same inputs must leave ``dvc.lock`` unchanged, so no metrics file a stage writes
may hold a duration (or a rate computed from one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from genprm.logs import is_timing_key, split_timings, write_report
from genprm.quality import StageOutputError, fail_stage


def _timing_keys(data, prefix: str = "") -> list[str]:
    """Every (dotted) key of ``data`` that names a duration or a rate."""
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if is_timing_key(k):
                found.append(name)
            found += _timing_keys(v, name)
    return found


def test_split_keeps_structure_and_drops_only_timings():
    report = {"solutions": 3, "seconds": 1.2, "stage_seconds": 1.5, "completions_per_s": 9.0,
              "train": {"steps": 4, "train_seconds": 2.0}, "scheduler": {"exec_seconds": 0.1},
              "shards": {}, "solutions_per_second": 2.5, "per_source": {"world": 3}}
    metrics, timings = split_timings(report)
    assert metrics == {"solutions": 3, "train": {"steps": 4}, "shards": {}, "per_source": {"world": 3}}
    assert timings == {"seconds": 1.2, "stage_seconds": 1.5, "completions_per_s": 9.0,
                       "train": {"train_seconds": 2.0}, "scheduler": {"exec_seconds": 0.1},
                       "solutions_per_second": 2.5}
    assert _timing_keys(metrics) == []


def test_write_report_and_fail_stage_write_two_files(tmp_path):
    metrics, timings = write_report({"n": 1, "seconds": 0.5}, tmp_path / "m.json", tmp_path / "t" / "s.json")
    assert json.loads((tmp_path / "m.json").read_text()) == metrics == {"n": 1}
    assert json.loads((tmp_path / "t/s.json").read_text()) == timings == {"seconds": 0.5}
    exc = StageOutputError("nothing", {"shards": {"shards": 0}, "stage_seconds": 0.2})
    assert fail_stage(exc, tmp_path / "f.json", timings_path=tmp_path / "t/f.json") == 1
    assert json.loads((tmp_path / "f.json").read_text()) == {"shards": {"shards": 0}}
    assert json.loads((tmp_path / "t/f.json").read_text()) == {"stage_seconds": 0.2}


def test_prepare_stage_writes_metrics_without_seconds_and_its_timings(repo, tmp_path):
    for name in ("stages", "src", "params.yaml", "dvc.yaml"):
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    r = subprocess.run([sys.executable, "stages/prepare.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "metrics/prepare.json").read_text())
    assert metrics["train"]["kept"] > 0 and _timing_keys(metrics) == []
    assert "seconds" not in (tmp_path / "metrics/prepare.json").read_text()
    timings = json.loads((tmp_path / "timings/prepare.json").read_text())
    assert timings["seconds"] >= 0


def test_committed_metrics_hold_no_timings(repo):
    for path in sorted((repo / "metrics").glob("*.json")):
        assert _timing_keys(json.loads(path.read_text())) == [], path.name


def test_every_stage_writes_its_metrics_through_write_report(repo):
    """A grep over the stage scripts: the metrics file is written by ``write_report`` (or holds no timings)."""
    scripts = sorted(p for p in (repo / "stages").glob("*.py") if p.stem not in ("lineage", "eval_args"))
    no_timings = {"register"}  # its report is a registry decision: names, versions, checks, values
    for path in scripts:
        text = path.read_text()
        if "--metrics" not in text and "eval_args" not in text:
            continue
        if path.stem in no_timings:
            continue
        assert not re.search(r"write_json\(args\.metrics", text), f"{path.name} writes metrics with write_json"
        assert "write_report(" in text, f"{path.name} does not split its timings out"
        assert "timings=timings" in text, f"{path.name} does not log its timings to MLflow"
        if "fail_stage(" in text:
            assert "timings_path=args.timings" in text, path.name


def test_timings_folder_is_untracked(repo):
    assert "/timings/" in (repo / ".gitignore").read_text().split()
    assert "timings/" not in (repo / "dvc.yaml").read_text()


def test_timings_path_pairs_with_the_metrics_folder(tmp_path):
    from genprm.logs import timings_path

    assert timings_path("rollout", "metrics/rollout.json") == Path("timings/rollout.json")
    assert timings_path("evaluate_processbench", tmp_path / "metrics" / "processbench.json") == \
        tmp_path / "timings" / "evaluate_processbench.json"
    assert timings_path("labels", tmp_path / "m.json") == tmp_path / "m.timings.json"  # a test's tmp metrics
    assert timings_path("prepare") == Path("timings/prepare.json")
