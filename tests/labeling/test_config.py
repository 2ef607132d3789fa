"""The labeling config sections: the proposed params.yaml sections validate, typos are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genprm.config import ConfigError
from genprm.labeling.config import LabelsConfig, MonteCarloConfig, RolloutConfig, load_section

PROPOSED = """
rollout:
  engine:
    backend: hf
    settings: {dtype: float32, batch_size: 256, num_threads: 2}
  n_problems: 100
  paths_per_round: 8
  max_paths: 32
  keep_correct: 2
  keep_incorrect: 2
  temperature: 1.0
  top_p: 1.0
  max_tokens: 96
  seed: 0
  shard_size: 25
montecarlo:
  engine:
    backend: hf
    settings: {dtype: float32, batch_size: 256, num_threads: 2}
  k_thresholds: [[0.1, 32], [0.9, 16], [1.0, 8]]
  temperature: 0.7
  top_p: 1.0
  max_tokens: 96
  seed: 0
  shard_size: 25
  max_requests_per_call: 4096
  adaptive: {enabled: false, chunk: 8, confidence: 0.99, bound: predictive, epsilon: 0.8}
labels:
  epsilon: 0.8
  difference_threshold: -0.3
  training_label: rpe
  gate: {min_positive_share: 0.05, max_positive_share: 0.95}
"""


def test_proposed_sections_validate(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(PROPOSED)
    r = load_section(path, "rollout", RolloutConfig)
    m = load_section(path, "montecarlo", MonteCarloConfig)
    lab = load_section(path, "labels", LabelsConfig)
    assert r.engine.backend == "hf" and r.shard_size == 25
    assert m.k_thresholds == [(0.1, 32), (0.9, 16), (1.0, 8)] and not m.adaptive.enabled
    assert lab.training_label == "rpe"


def test_errors_name_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load(PROPOSED)
    data["montecarlo"]["adaptive"]["chunks"] = 4
    data["montecarlo"]["k_thresholds"] = [[0.9, 16], [0.1, 32], [1.0, 8]]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"montecarlo\.adaptive\.chunks: unknown key"):
        load_section(path, "montecarlo", MonteCarloConfig)
    with pytest.raises(ConfigError, match="section 'nope' is missing"):
        load_section(path, "nope", LabelsConfig)
    with pytest.raises(ValueError, match="training_label"):
        LabelsConfig(training_label="soft")
    with pytest.raises(ValueError, match="ascending"):
        MonteCarloConfig(engine={"backend": "hf"}, k_thresholds=[(0.9, 16), (0.1, 32), (1.0, 8)])


def test_one_sided_defaults_to_drop_and_names_a_bad_value(tmp_path: Path) -> None:
    data = yaml.safe_load(PROPOSED)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_section(path, "rollout", RolloutConfig).one_sided == "drop"  # the paper's rule
    data["rollout"]["one_sided"] = "keep"
    path.write_text(yaml.safe_dump(data))
    assert load_section(path, "rollout", RolloutConfig).one_sided == "keep"
    data["rollout"]["one_sided"] = "kept"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"rollout\.one_sided: .*'drop' or 'keep'"):
        load_section(path, "rollout", RolloutConfig)
