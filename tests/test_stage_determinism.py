"""Same machine, same seed, same bytes: ``prepare`` then ``policy`` run twice from scratch.

Both runs use the same tiny params (20 optimizer steps, two cycles of 10 as the default has two,
5 held-out problems sampled with the ``hf`` engine) in two fresh folders; every file they write
(data, model folders, metrics, plot) must have the same sha256. Only ``timings/`` may differ: durations are kept out of the tracked outputs for
exactly this reason (``genprm.logs.write_report``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

OUTPUTS = ("data", "models", "metrics", "plots")


def _tiny_params(repo: Path) -> dict:
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["prepare"]["train"][0]["n"] = 300
    p["prepare"]["eval"] = {"world_test": {"name": "world", "n": 20, "seed": 2}}
    p["policy"].update(steps=20, warmup_steps=5, batch_size=8)
    if p["policy"].get("base_steps"):  # two cycles, as the default: keep both (and models/genprm-base)
        p["policy"]["base_steps"] = 10
    p["policy_eval"].update(problems=5, samples=1, engine={"backend": "hf", "settings": {"dtype": "float32"}})
    p["sampling"]["max_tokens"] = 32
    return p


def _run(repo: Path, root: Path, params: dict) -> dict[str, str]:
    root.mkdir()
    shutil.copytree(repo / "stages", root / "stages")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("prepare", "policy"):
        r = subprocess.run([sys.executable, f"stages/{stage}.py", "--params", "params.yaml"], cwd=root,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{stage}: {r.stderr[-3000:]}"
    assert (root / "timings/policy.json").is_file()
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for top in OUTPUTS for f in sorted((root / top).rglob("*")) if f.is_file()}


@pytest.mark.slow
def test_prepare_and_policy_are_byte_identical_across_runs(repo, tmp_path):
    params = _tiny_params(repo)
    first = _run(repo, tmp_path / "a", params)
    second = _run(repo, tmp_path / "b", params)
    assert {"metrics/prepare.json", "metrics/policy.json", "models/policy/model.safetensors",
            "data/prepared/train.jsonl", "plots/policy_loss.json"} <= set(first)
    if params["policy"].get("base_steps"):
        assert "models/genprm-base/model.safetensors" in first
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"files that differ between two runs with the same params: {differ}"
