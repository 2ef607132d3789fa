
import pytest
import yaml

from genprm.config import ConfigError
from genprm.params import Params, load_params


def _write(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_repository_params_load(repo):
    params = load_params(repo / "params.yaml")
    assert isinstance(params, Params)
    assert params.prepare.train[0].name == "world"


def _base(repo):
    return yaml.safe_load((repo / "params.yaml").read_text())


def test_unknown_key_is_named_with_suggestion(repo, tmp_path):
    data = _base(repo)
    data["prepare"]["decontaminte"] = True
    with pytest.raises(ConfigError) as err:
        load_params(_write(tmp_path, data))
    assert "prepare.decontaminte: unknown key (did you mean 'decontaminate'?)" in str(err.value)
    assert "params.yaml" in str(err.value)


def test_unknown_key_inside_list_and_dict(repo, tmp_path):
    data = _base(repo)
    data["prepare"]["train"][0]["sed"] = 3
    with pytest.raises(ConfigError, match=r"prepare\.train\.0\.sed: unknown key \(did you mean 'seed'\?\)"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["eval"]["world_test"]["limt"] = 3
    with pytest.raises(ConfigError, match=r"prepare\.eval\.world_test\.limt: unknown key \(did you mean 'limit'\?\)"):
        load_params(_write(tmp_path, data))


def test_wrong_type_is_named(repo, tmp_path):
    data = _base(repo)
    data["prepare"]["train"][0]["n"] = "many"
    with pytest.raises(ConfigError, match=r"prepare\.train\.0\.n: Input should be a valid integer"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["world"]["max_operand"] = 12
    with pytest.raises(ConfigError, match=r"world\.max_operand"):
        load_params(_write(tmp_path, data))


def test_unknown_section_and_cross_field_rules(repo, tmp_path):
    data = _base(repo)
    data["rolout"] = {"n": 3}
    with pytest.raises(ConfigError, match=r"rolout: unknown key \(did you mean 'rollout'\?\)"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["train"][0].pop("seed")
    with pytest.raises(ConfigError, match="needs 'n' and 'seed'"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["train"] = [{"name": "math", "n": 5}]
    with pytest.raises(ConfigError, match="'world' sources only"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["train"][0]["shape"] = {"max_opps": 4}
    with pytest.raises(ConfigError, match=r"shape: unknown key\(s\) \['max_opps'\]"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["eval"]["hard"] = {"name": "world", "n": 3, "seed": 1, "shape": {"min_ops": 9}}
    with pytest.raises(ConfigError, match=r"prepare\.eval\.hard\.shape: min_ops \(9\) > max_ops \(4\)"):
        load_params(_write(tmp_path, data))


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_params(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(bad)


def test_engine_section_is_checked_against_the_backend(repo, tmp_path):
    data = _base(repo)
    data["policy_eval"] = {"engine": {"backend": "vlm"}}
    with pytest.raises(ConfigError, match=r"policy_eval\.engine.*did you mean 'vllm'"):
        load_params(_write(tmp_path, data))
    data["policy_eval"] = {"engine": {"backend": "vllm", "settings": {"dtype": "float32", "tensor_parallel": 2}}}
    with pytest.raises(ConfigError, match="tensor_parallel"):
        load_params(_write(tmp_path, data))
    data["policy_eval"] = {"engine": {"backend": "world-teacher", "settings": {"noise": 0.1}}}
    assert load_params(_write(tmp_path, data)).policy_eval.engine.settings == {"noise": 0.1}


def test_policy_section_defaults_and_errors(repo, tmp_path):
    data = _base(repo)
    data["policy"] = {"steps": 10, "model": {"hidden_size": 64, "num_heads": 2}}
    assert load_params(_write(tmp_path, data)).policy.model.hidden_size == 64
    data["policy"] = {"model": {"hidden_size": 64, "num_heads": 4}}
    with pytest.raises(ConfigError, match=r"policy\.model: .*head_dim 16 < 32"):
        load_params(_write(tmp_path, data))
    data["policy"] = {"stpes": 10}
    with pytest.raises(ConfigError, match=r"policy\.stpes: unknown key \(did you mean 'steps'\?\)"):
        load_params(_write(tmp_path, data))


def test_training_mode_auto_is_lora_on_cpu_full_on_gpu():
    import torch

    from genprm.training import TrainingConfig

    assert TrainingConfig().mode == ("full" if torch.cuda.is_available() else "lora")
    assert TrainingConfig(mode="full").mode == "full" and TrainingConfig(mode="lora").mode == "lora"
