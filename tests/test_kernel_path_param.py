"""The kernel path as a profile parameter: ``python -m genprm.kernels PATH -- CMD`` and dvc.yaml's use of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genprm.config import ConfigError
from genprm.kernels import KERNEL_PATHS, command_env
from genprm.params import load_params

ROOT = Path(__file__).resolve().parents[1]
SHOW_ENV = "import json, os, sys; print(json.dumps([sys.executable, {k: v for k, v in os.environ.items() " \
           "if k.startswith(('ATEN_', 'MKL_', 'ONEDNN_'))}]))"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genprm.kernels", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_main_sets_the_paths_variables_and_execs_the_command():
    proc = _run("avx2", "--", "python", "-c", SHOW_ENV)
    assert proc.returncode == 0, proc.stderr
    exe, env = json.loads(proc.stdout)
    assert env == KERNEL_PATHS["avx2"]
    assert exe == sys.executable  # `python` runs under the wrapper's interpreter


def test_native_clears_inherited_kernel_variables():
    inherited = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2")
    proc = _run("native", "--", "python", "-c", SHOW_ENV, env=inherited)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[1] == {}
    assert "ATEN_CPU_CAPABILITY" not in command_env("native", inherited)


def test_exit_status_and_errors():
    assert _run("native", "--", "python", "-c", "raise SystemExit(3)").returncode == 3
    bad = _run("avx3", "--", "true")
    assert bad.returncode == 2 and "known: native, avx2" in bad.stderr
    assert _run("native").returncode == 2  # no command
    assert _run("native", "--", "no-such-command-here").returncode == 127


def test_profile_kernel_path_is_validated(tmp_path):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert load_params(ROOT / "params.yaml").kernel_path == data["kernel_path"] == "native"
    data["kernel_path"] = "avx512"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"kernel_path: .*unknown kernel path 'avx512'"):
        load_params(path)


def _has_seed(value) -> bool:
    if isinstance(value, dict):
        return "seed" in value or any(_has_seed(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_seed(v) for v in value)
    return False


def test_every_stage_runs_under_the_kernel_path_and_random_ones_list_seed():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    profile = load_params(ROOT / "params.yaml").model_dump(mode="json")
    seeded = []
    for name, spec in stages.items():
        assert spec["cmd"].startswith("python -m genprm.kernels ${kernel_path} -- python stages/"), name
        assert "src/genprm/kernels.py" in spec["deps"], name
        sections = [k for k in spec.get("params", []) if isinstance(k, str) and k != "seed"]
        reads_seed = any(_has_seed(_dig(profile, key)) for key in sections)
        assert ("seed" in spec.get("params", [])) == reads_seed, f"{name}: lists seed iff its sections have seeds"
        seeded += [name] * reads_seed
    assert {"prepare", "policy", "rollout", "montecarlo", "synthesis", "train", "best_of_n", "critic",
            "register"} <= set(seeded)  # register: the served verifier's seed
    assert "labels" not in seeded


def _dig(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data[part]
    return data


def test_shards_of_another_kernel_path_are_not_reused(tmp_path, monkeypatch):
    """The rollout / montecarlo shard fingerprint holds the kernel variables (none under native: as before)."""
    from genprm.labeling.config import RolloutConfig
    from genprm.labeling.runner import _identity

    (tmp_path / "config.json").write_text("{}")
    cfg = RolloutConfig(engine={"backend": "hf", "settings": {}})
    for name in KERNEL_PATHS["avx2"]:
        monkeypatch.delenv(name, raising=False)
    native = _identity("rollout", cfg, tmp_path, None)
    assert "kernels" not in native
    for name, value in KERNEL_PATHS["avx2"].items():
        monkeypatch.setenv(name, value)
    assert _identity("rollout", cfg, tmp_path, None) == {**native, "kernels": KERNEL_PATHS["avx2"]}


def test_a_repository_copy_runs_its_own_library(tmp_path):
    """In a folder holding src/genprm (a DVC experiment's copy), the command imports that copy first."""
    (tmp_path / "src" / "genprm").mkdir(parents=True)
    code = "import os, sys; print(sys.path[1])"  # sys.path[0] is '' for -c; PYTHONPATH comes next
    proc = subprocess.run([sys.executable, "-m", "genprm.kernels", "native", "--", "python", "-c", code],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "src")
