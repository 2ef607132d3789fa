"""The profiles: params.yaml (embedded default) and configs/paper.yaml (the paper's setup) validate,
paper.yaml holds the paper's numbers, and both carry every section their DVC stages list."""

import re

import pytest
import yaml

from genprm.config import ConfigError, EngineConfig
from genprm.data.registry import get_spec
from genprm.params import Params, load_params

WORLD_ONLY = {"policy", "world_bench"}


@pytest.fixture(scope="module")
def paper(repo) -> Params:
    return load_params(repo / "configs" / "paper.yaml")


def _raw(repo, name="configs/paper.yaml") -> dict:
    return yaml.safe_load((repo / name).read_text())


def _engines(node):
    """Every engine mapping ({backend, settings}) anywhere in a raw profile."""
    if isinstance(node, dict):
        if "backend" in node and isinstance(node.get("settings"), dict):
            yield node
        for value in node.values():
            yield from _engines(value)
    elif isinstance(node, list):
        for value in node:
            yield from _engines(value)


def test_both_profiles_load(repo, paper):
    assert isinstance(load_params(repo / "params.yaml"), Params)
    assert isinstance(paper, Params)


def test_paper_labeling_is_the_papers(paper):
    assert paper.montecarlo.k_thresholds == [(0.1, 128), (0.9, 64), (1.0, 32)]
    assert paper.montecarlo.temperature == 0.7
    assert not paper.montecarlo.adaptive.enabled
    assert paper.labels.epsilon == 0.8 and paper.labels.training_label == "rpe"
    assert paper.rollout.max_paths == 2048
    assert paper.rollout.engine.settings["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert paper.montecarlo.engine.settings["model"] == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert paper.synthesis.engine.settings["model"] == "Qwen/QwQ-32B"
    assert paper.synthesis.format == "whole_solution"


def test_paper_training_is_the_papers(repo, paper):
    t = paper.train
    assert t.base_model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert t.lr == 2e-6
    assert t.mode == "full" and t.bf16 is True
    # effective batch = per device x accumulation x processes of the accelerate config make paper uses
    fsdp = yaml.safe_load((repo / "configs" / "accelerate" / "fsdp.yaml").read_text())
    assert t.per_device_batch_size * t.grad_accum * fsdp["num_processes"] == 64
    assert fsdp["mixed_precision"] == "bf16"


def test_paper_evaluation_is_the_papers(paper):
    ev = paper.evaluate_processbench
    assert ev.data == "data/processbench" and ev.splits is None and ev.limit is None
    v = ev.verifier
    assert (v.n_paths, v.temperature, v.top_p, v.top_k, v.max_tokens) == (8, 0.6, 0.95, 20, 2048)
    assert ev.threshold == 0.5
    assert paper.best_of_n.n_max == 32
    assert paper.best_of_n.policy_engine.settings["model"] == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert paper.critic.turns == 3 and paper.critic.mode == "feedback"
    # the registry gates on the Maj@N key the evaluate stage writes (metrics/processbench.json)
    assert paper.registry.verifier.n_paths == v.n_paths
    for spec in paper.registry.metric_specs():
        file, key = spec.split(":", 1)
        assert file == "metrics/processbench.json" and key.startswith(f"maj@{v.n_paths}.")


def test_paper_uses_tensor_parallelism(repo):
    sizes = [e["settings"].get("tensor_parallel_size", 1) for e in _engines(_raw(repo)) if e["backend"] == "vllm"]
    assert max(sizes) > 1


def test_paper_sources_are_known_loaders_with_their_hub_ids(paper):
    sources = [*paper.prepare.train, *paper.prepare.eval.values()]
    assert {s.name for s in sources} == {"math", "math500", "aime24", "amc23", "minerva_math", "processbench"}
    for s in sources:
        if s.name == "processbench":
            assert s.source == "Qwen/ProcessBench"
        else:  # the loader's own Hub id (MATH's subject configs are loaded only for it)
            assert s.source == get_spec(s.name).hub_id, s.name
    assert paper.prepare.train[0].split == "train" and paper.prepare.decontaminate
    assert paper.best_of_n.eval_set in paper.prepare.eval and paper.critic.eval_set in paper.prepare.eval


PROFILES = ["params.yaml", "configs/paper.yaml", "configs/smoke.yaml", "configs/real-world.yaml"]


def test_every_profile_is_listed(repo):
    assert {f"configs/{p.name}" for p in (repo / "configs").glob("*.yaml")} == set(PROFILES[1:])


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_validates_and_has_every_params_key_dvc_reads(repo, profile):
    load_params(repo / profile)
    # `dvc repro` fails on a stage whose listed params key (dotted: a path of keys) is missing from params.yaml
    data = _raw(repo, profile)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for key in stage.get("params", []):
            if isinstance(key, str):  # a key of params.yaml (a mapping names another file)
                node = data
                for part in key.split("."):
                    assert isinstance(node, dict) and part in node, f"{profile}: stage {name} reads params '{key}'"
                    node = node[part]


@pytest.mark.parametrize("variable, profile", [("SMOKE_STAGES", "configs/smoke.yaml"),
                                               ("REAL_WORLD_STAGES", "configs/real-world.yaml")])
def test_make_targets_run_each_stage_after_the_stages_it_reads(repo, variable, profile):
    make = (repo / "Makefile").read_text()
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    data = _raw(repo, profile)

    def resolve(path: str) -> str:  # dvc.yaml's ${section.key} templates, from the profile
        def value(m: re.Match) -> str:
            node = data
            for part in m.group(1).split("."):
                node = node[part]
            return str(node)
        return re.sub(r"\$\{([^}]+)\}", value, path)

    run = re.search(rf"^{variable} \?= (.+)$", make, re.M).group(1).split()
    assert set(run) <= set(stages) and len(run) == len(set(run))
    writer = {str(out): name for name in run for out in stages[name].get("outs", [])}
    checked = 0
    for i, name in enumerate(run):
        for dep in map(resolve, stages[name].get("deps", [])):
            upstream = next((w for out, w in writer.items() if dep == out or dep.startswith(out + "/")), None)
            assert upstream is None or run.index(upstream) < i, f"{variable}: {name} reads {dep} before {upstream} runs"
            checked += upstream is not None
    assert checked >= len(run) - 2  # every stage but prepare and register reads another's output


def test_make_paper_skips_world_only_stages(repo):
    make = (repo / "Makefile").read_text()
    stages = list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    run = re.search(r"^PAPER_STAGES \?= (.+)$", make, re.M).group(1).split()
    assert set(run) <= set(stages) and not WORLD_ONLY & set(run)
    assert run == sorted(run, key=stages.index)  # --single-item runs them in the order given


def test_openai_teacher_alternative_validates(repo):
    text = (repo / "configs" / "paper.yaml").read_text()
    block = re.search(r"# --- openai teacher ---\n(.*?)# --- end openai teacher ---", text, re.S).group(1)
    uncommented = "\n".join(re.sub(r"^\s*# ?", "", line, count=1) for line in block.splitlines())
    engine = EngineConfig.model_validate(yaml.safe_load(uncommented)["engine"])
    assert engine.backend == "openai" and engine.settings["model"] == "Qwen/QwQ-32B"
    assert "api_key" not in engine.settings  # the key comes from the environment


def test_wrong_key_in_paper_profile_is_named(repo, tmp_path):
    path = tmp_path / "paper.yaml"
    data = _raw(repo)
    data["train"]["grad_acum"] = 16
    path.write_text(yaml.safe_dump(data))
    msg = r"paper\.yaml: train\.grad_acum: unknown key \(did you mean 'grad_accum'\?\)"
    with pytest.raises(ConfigError, match=msg):
        load_params(path)
    data = _raw(repo)
    data["evaluate_processbench"]["verifier"]["n_path"] = 8
    path.write_text(yaml.safe_dump(data))
    msg = r"evaluate_processbench\.verifier\.n_path: unknown key \(did you mean 'n_paths'\?\)"
    with pytest.raises(ConfigError, match=msg):
        load_params(path)
    data = _raw(repo)
    data["montecarlo"]["k_thresholds"] = [[0.9, 64], [0.1, 128]]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"paper\.yaml: montecarlo: .*k_thresholds .*ascending"):
        load_params(path)
