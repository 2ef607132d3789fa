"""The profile's top-level seed shifts every stage's seed, through both config loaders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genprm.config import SEED_STRIDE, ConfigError
from genprm.kernels import KERNEL_PATHS, kernel_env
from genprm.labeling.config import MonteCarloConfig, RolloutConfig, load_section
from genprm.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def _seeds(value, where=""):
    """Every (dotted key, value) of a ``seed`` field in a dumped profile."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "seed" and isinstance(v, int) and where:
                yield f"{where}.seed", v
            else:
                yield from _seeds(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _seeds(v, f"{where}.{i}")


def _profile(tmp_path: Path, seed: int) -> Path:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["seed"] = seed
    path = tmp_path / f"params-{seed}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_top_level_seed_shifts_every_stage_seed(tmp_path):
    base = dict(_seeds(load_params(_profile(tmp_path, 0)).model_dump()))
    shifted = dict(_seeds(load_params(_profile(tmp_path, 2)).model_dump()))
    assert set(base) == set(shifted)
    # the default profile's stages all have seeds, the verifier sections' included
    assert {"policy.seed", "rollout.seed", "montecarlo.seed", "train.seed", "best_of_n.verifier.seed",
            "prepare.train.0.seed", "prepare.eval.world_test.seed", "critic.seed"} <= set(base)
    for key, value in base.items():
        assert shifted[key] == value + 2 * SEED_STRIDE, key


def test_seed_zero_keeps_written_values(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = load_params(_profile(tmp_path, 0))
    assert params.policy.seed == raw["policy"]["seed"]
    assert params.prepare.eval["world_hard"].seed == raw["prepare"]["eval"]["world_hard"]["seed"]


def test_load_section_agrees_with_load_params(tmp_path):
    path = _profile(tmp_path, 1)
    whole = load_params(path)
    assert load_section(path, "rollout", RolloutConfig).seed == whole.rollout.seed == 1 * SEED_STRIDE
    assert load_section(path, "montecarlo", MonteCarloConfig).seed == whole.montecarlo.seed


def test_bad_top_level_seed_is_named(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"seed": "one", "rollout": {"engine": {"backend": "vllm"}}}))
    with pytest.raises(ConfigError, match=r"p.yaml: seed"):
        load_section(path, "rollout", RolloutConfig)


def test_kernel_path_env_reaches_aten():
    """The avx2 path's variables really switch ATen's kernels in a fresh process."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env=kernel_env("avx2") | {"PATH": ""}, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "AVX2"
    with pytest.raises(ValueError, match="known: native, avx2"):
        kernel_env("avx3")
    assert KERNEL_PATHS["native"] == {}
