
import pytest
import yaml

from genprm.config import ConfigError, Params, load_params


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
    data["rollout"] = {"n": 3}
    with pytest.raises(ConfigError, match="rollout: unknown key"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["train"][0].pop("seed")
    with pytest.raises(ConfigError, match="needs 'n' and 'seed'"):
        load_params(_write(tmp_path, data))
    data = _base(repo)
    data["prepare"]["train"] = [{"name": "math", "n": 5}]
    with pytest.raises(ConfigError, match="'world' sources only"):
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
