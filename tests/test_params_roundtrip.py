"""`dvc exp run -S key=value` rewrites a profile with DVC's YAML dumper: every profile must survive it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dvc.utils.serialize import modify_yaml, parse_yaml

from genprm.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PROFILES = [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profile_survives_dvc_set_param(profile, tmp_path):
    copy = tmp_path / profile.name
    shutil.copy(profile, copy)
    with modify_yaml(copy) as data:  # what `dvc exp run -S seed=1` does to params.yaml
        data["seed"] = 1
    parse_yaml(copy.read_text(), str(copy))  # DVC's own parser reads it back (ruamel is stricter than PyYAML)
    before, after = load_params(profile), load_params(copy)
    assert after.seed == 1
    if before.registry is not None:  # the quoted "file:key" strings keep their value
        assert after.registry.compare == before.registry.compare
        assert after.registry.thresholds == before.registry.thresholds
