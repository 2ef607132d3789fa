"""The gated registry: the promotion rules by hand, then the register stage against a real sqlite
registry, with the real labels stage and its great-expectations gate deciding what may be promoted."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from genprm.config import ConfigError
from genprm.labeling.config import load_section
from genprm.registry import (
    CompareConfig,
    RegisterConfig,
    Threshold,
    MissingInputError,
    lookup,
    metric_value,
    promotion_decision,
    require_inputs,
)

REPO = Path(__file__).resolve().parents[1]
EVAL = "metrics/eval_world.json"
F1 = f"{EVAL}:processbench.pass@1.average_f1"
GATES = ["metrics/labels.json", "metrics/synthesis.json"]


def _cfg(**kw) -> RegisterConfig:
    base = {"gates": GATES, "thresholds": [f"{F1} >= 80", {"metric": f"{EVAL}:best_of_n.acc@8", "op": ">", "value": 0.5}],
            "compare": F1, "verifier": {"engine": {"backend": "world-teacher"}}}
    return RegisterConfig.model_validate({**base, **kw})


def _passed(n: int = 0) -> dict:
    return {"solutions": 6, "gate": {"expectations": 18, "failed": n}}


def _eval(f1: float = 85.0, acc: float = 0.7) -> dict:
    return {"processbench": {"pass@1": {"average_f1": f1}, "maj@4": {"average_f1": f1 + 1}}, "best_of_n": {"acc@8": acc}}


def _decide(gates=None, metrics=None, champion=None, **cfg):
    gates = {g: _passed() for g in GATES} if gates is None else gates
    return promotion_decision(gates, {EVAL: _eval()} if metrics is None else metrics, champion, _cfg(**cfg))


# ------------------------------------------------------------------------------------ config
def test_thresholds_parse_from_strings_and_objects(tmp_path):
    cfg = _cfg()
    assert cfg.thresholds[0] == Threshold(metric=F1, op=">=", value=80.0)
    assert cfg.thresholds[1].metric == f"{EVAL}:best_of_n.acc@8" and cfg.thresholds[1].op == ">"
    assert cfg.compare == CompareConfig(metric=F1) and cfg.compare.min_delta == 0.0
    assert cfg.metric_files() == [*GATES, EVAL]
    assert RegisterConfig().model_name == "genprm" and RegisterConfig().gates == GATES
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"registry": {"thresholds": ["f1 >= 80"]}}))
    with pytest.raises(ConfigError, match=r"registry\.thresholds\.0.*<metrics file>:<dotted.key>"):
        load_section(tmp_path / "p.yaml", "registry", RegisterConfig)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"registry": {"thresholds": [f"{F1} => 80"]}}))
    with pytest.raises(ConfigError, match=r"registry\.thresholds\.0"):
        load_section(tmp_path / "p.yaml", "registry", RegisterConfig)


def test_lookup_follows_dotted_keys_and_names_the_miss():
    data = {"a": {"f1@0.5": {"x": 2}, "b": 1}}
    assert lookup(data, "a.f1@0.5.x") == 2 and lookup(data, "a.b") == 1
    with pytest.raises(KeyError, match="no key 'c' at a"):
        lookup(data, "a.c")
    with pytest.raises(ValueError, match="did you mean average_f1"):
        metric_value({EVAL: _eval()}, f"{EVAL}:processbench.pass@1.average_f")
    with pytest.raises(ValueError, match="not a number"):
        metric_value({EVAL: _eval()}, f"{EVAL}:processbench.pass@1")


# ----------------------------------------------------------------------------- the decision
def test_all_checks_pass_promotes():
    d = _decide()
    assert d.promote and d.reasons == []
    assert d.values == {F1: 85.0, f"{EVAL}:best_of_n.acc@8": 0.7}
    assert any("no champion yet" in c for c in d.checks)
    assert _decide(champion={F1: 84.0}).promote


def test_failed_gate_blocks_and_names_the_gate():
    gates = {"metrics/labels.json": {"gate": {"failed": 2, "failures": ["- [steps] expect_column_values_to_be_between"]}},
             "metrics/synthesis.json": _passed()}
    d = _decide(gates=gates)
    assert not d.promote
    assert d.reasons == ["gate metrics/labels.json: 2 failed expectation(s): - [steps] expect_column_values_to_be_between"]


def test_failed_gate_as_written_by_a_failing_stage_names_the_first_failure():
    """A failing gate writes ``gate.failures`` as records (genprm.quality.GateFailure.to_dict)."""
    failure = {"message": "- [steps] expect_column_mean_to_be_between {'column': 'label_rpe'}: observed 0.0",
               "expectation": "expect_column_mean_to_be_between", "column": "label_rpe", "observed": 0.0, "rows": []}
    d = _decide(gates={"metrics/labels.json": {"gate": {"failed": 1, "failures": [failure]}},
                       "metrics/synthesis.json": _passed()})
    assert d.reasons == [f"gate metrics/labels.json: 1 failed expectation(s): {failure['message']}"]


def test_require_inputs_names_the_missing_file_and_its_stage(tmp_path):
    (tmp_path / "labels.json").write_text("{}")
    producers = {str(tmp_path / "synthesis.json"): "synthesis"}
    require_inputs([tmp_path / "labels.json"], producers)  # all there: no error
    with pytest.raises(MissingInputError) as info:
        require_inputs([tmp_path / "labels.json", tmp_path / "synthesis.json", tmp_path / "other.json"], producers)
    assert info.value.missing == [str(tmp_path / "synthesis.json"), str(tmp_path / "other.json")]
    assert str(info.value).startswith(f"{tmp_path / 'synthesis.json'} is missing: run the `synthesis` stage first "
                                      "(dvc repro synthesis).")
    assert f"{tmp_path / 'other.json'} is missing, and no pipeline stage writes it" in str(info.value)


def test_register_stage_names_a_missing_upstream_output(tmp_path, monkeypatch, load_script, caplog):
    """No traceback, no registry touched: the stage exits 1 saying which stage to run."""
    import logging

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"registry": {"gates": GATES}}))
    (tmp_path / "models" / "genprm").mkdir(parents=True)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "labels.json").write_text(json.dumps(_passed()))
    with caplog.at_level(logging.ERROR):
        assert load_script(REPO / "stages" / "register.py").main(["--params", "params.yaml"]) == 1
    assert "metrics/synthesis.json is missing: run the `synthesis` stage first (dvc repro synthesis)" in caplog.text
    assert "Traceback" not in caplog.text and not (tmp_path / "metrics" / "register.json").exists()
    (tmp_path / "models" / "genprm").rmdir()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert load_script(REPO / "stages" / "register.py").main(["--params", "params.yaml"]) == 1
    assert "models/genprm is missing: run the `train` stage first" in caplog.text


def test_missing_gate_file_or_section_blocks():
    d = _decide(gates={"metrics/labels.json": _passed(), "metrics/synthesis.json": {"kept": 3}})
    assert not d.promote and d.reasons == ["gate metrics/synthesis.json: no 'gate' section (the great-expectations gate did not run)"]
    d = _decide(gates={"metrics/synthesis.json": _passed()})
    assert not d.promote and d.reasons[0].startswith("gate metrics/labels.json: missing")


def test_metric_below_threshold_blocks():
    d = _decide(metrics={EVAL: _eval(f1=79.9)})
    assert not d.promote
    assert d.reasons == [f"{F1} = 79.9 fails threshold >= 80"]
    d = _decide(metrics={})
    assert not d.promote and all("metrics file metrics/eval_world.json is missing" in r for r in d.reasons)
    assert len(d.reasons) == 2  # one per metric, not repeated by compare


def test_not_better_than_champion_blocks():
    d = _decide(champion={F1: 85.0})
    assert not d.promote and d.reasons == [f"{F1} = 85 does not beat the champion's 85 (needs above 85)"]
    d = _decide(champion={F1: 84.5}, compare={"metric": F1, "min_delta": 1.0})
    assert not d.promote and "needs above 85.5" in d.reasons[0]
    d = _decide(champion={"other": 1.0})
    assert not d.promote and "the champion has no value for it" in d.reasons[0]
    d = _decide(champion={F1: 86.0}, compare={"metric": F1, "mode": "min"})
    assert d.promote  # lower is better here


def test_every_reason_is_reported():
    gates = {"metrics/labels.json": _passed(1), "metrics/synthesis.json": None}
    d = _decide(gates=gates, metrics={EVAL: _eval(f1=50, acc=0.1)}, champion={F1: 90.0})
    assert not d.promote and len(d.reasons) == 5


# ------------------------------------------------------------------ end to end, real registry
@pytest.fixture()
def stage(load_script):
    """``stage(name)``: the stage script ``stages/<name>.py`` as a module."""
    return lambda name: load_script(REPO / "stages" / f"{name}.py")


def _label_inputs(defect: bool) -> tuple[list[dict], list[dict]]:
    """Solutions and MC values of three problems (a correct and a wrong solution each); with
    ``defect``, a wrong solution's MC value rises again after reaching 0 (impossible for real
    Monte-Carlo values; the records accept it, the labels gate must catch it)."""
    from genprm.records import Solution, StepValues

    sols, vals = [], []
    for p in range(3):
        for j, ok in enumerate((True, False)):
            sid = f"p{p}/{j}"
            sols.append(Solution(id=sid, problem_id=f"p{p}", problem="q", steps=[f"{p} + {j} = {p + j}", "b", "c"],
                                 correct=ok).to_dict())
            mc, k = ([0.5, 0.5, 1.0], [64, 64, 0]) if ok else ([0.5, 0.0, 0.0], [64, 0, 0])
            vals.append(StepValues(solution_id=sid, problem_id=f"p{p}", mc_first=0.5, mc=mc, k=k).to_dict())
    if defect:
        vals = copy.deepcopy(vals)
        vals[1]["mc"][2] = 0.25
    return vals, sols


def _run_labels(stage, tmp: Path, defect: bool) -> int:
    """The real labels stage (real great-expectations gate) as ``dvc repro`` runs it: outputs removed first."""
    from genprm.records import write_records

    vals, sols = _label_inputs(defect)
    write_records(tmp / "work" / "values.jsonl", vals)
    write_records(tmp / "work" / "solutions.jsonl", sols)
    Path("metrics/labels.json").unlink(missing_ok=True)
    return stage("labels").main(["--params", "params.yaml", "--values", "work/values.jsonl", "--solutions",
                           "work/solutions.jsonl", "--out", "data/labels/values.jsonl", "--metrics", "metrics/labels.json"])


@pytest.fixture()
def project(mlflow_uri, tmp_path, monkeypatch):
    """A working directory with a params file, a fake model folder and a sqlite registry."""
    from mlflow.tracking import MlflowClient

    uri = mlflow_uri
    monkeypatch.chdir(tmp_path)
    params = {
        "labels": {"gate": {"min_positive_share": 0.2, "max_positive_share": 0.9}},
        "registry": {"model_name": "genprm", "gates": ["metrics/labels.json"], "thresholds": [f"{F1} >= 80"],
                     "compare": {"metric": F1, "min_delta": 0.5},
                     "verifier": {"engine": {"backend": "hf", "settings": {"dtype": "float32"}}, "n_paths": 2}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "models" / "genprm").mkdir(parents=True)
    (tmp_path / "models" / "genprm" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "metrics").mkdir()
    return MlflowClient(uri)


def _register(stage, f1: float) -> dict:
    Path(EVAL).write_text(json.dumps(_eval(f1=f1)))
    assert stage("register").main(["--params", "params.yaml"]) == 0
    return json.loads(Path("metrics/register.json").read_text())


@pytest.mark.slow
def test_planted_data_defect_blocks_promotion(project, stage):
    from genprm.labeling.gate import GateError

    client = project
    # 1. clean labels pass the real gate; the model beats the threshold: v1 is champion
    assert _run_labels(stage, Path.cwd(), defect=False) == 0
    assert json.loads(Path("metrics/labels.json").read_text())["gate"]["failed"] == 0
    out = _register(stage, 85.0)
    assert out["version"] == "1" and out["alias"] == "champion" and out["promoted"] and out["reasons"] == []
    v1 = client.get_model_version_by_alias("genprm", "champion")
    assert str(v1.version) == "1" and v1.tags["promotion"] == "promoted"
    assert json.loads(v1.tags["promotion.metrics"]) == {F1: 85.0}
    assert v1.tags["genprm.stage"] == "register" and v1.tags["genprm.git_commit"] == "unknown"
    assert len(v1.tags["data.md5"]) == 32 and v1.tags["data.in.metrics/labels.json"] != "missing"
    # the model folder travels with the registered pyfunc model
    from mlflow.artifacts import download_artifacts

    local = Path(download_artifacts(f"models:/genprm/{v1.version}"))
    assert (local / "artifacts" / "genprm" / "config.json").read_text() == '{"model_type": "llama"}'
    assert (local / "MLmodel").is_file()

    # 2. a planted defect: the labels gate writes its report into the stage's metrics, then stops the
    #    stage; a better model trained before the defect stays candidate, with the reason
    assert _run_labels(stage, Path.cwd(), defect=True) == 1
    report = json.loads(Path("metrics/labels.json").read_text())["gate"]
    assert report["failed"] == 1 and report["failures"][0]["column"] == "zeros_after_first_zero"
    assert report["failures"][0]["rows"] == [{"solution_id": "p0/1", "zeros_after_first_zero": False}]
    out = _register(stage, 90.0)
    assert out["version"] == "2" and out["alias"] == "candidate" and not out["promoted"]
    assert out["reasons"][0].startswith("gate metrics/labels.json: 1 failed expectation(s)")
    assert "zeros_after_first_zero" in out["reasons"][0]
    v2 = client.get_model_version_by_alias("genprm", "candidate")
    assert str(v2.version) == "2" and v2.tags["promotion"] == "blocked"
    assert "gate metrics/labels.json" in v2.tags["promotion.reasons"]
    assert str(client.get_model_version_by_alias("genprm", "champion").version) == "1"

    # 3. the gate's failures recorded in the metrics instead (a gate run that reports, not stops)
    from genprm.labeling.gate import run_gate
    from genprm.labeling.labels import apply_labels
    from genprm.records import StepValues

    vals, sols = _label_inputs(defect=True)
    with pytest.raises(GateError) as info:
        run_gate(apply_labels([StepValues.model_validate(v) for v in vals]), sols,
                 min_positive_share=0.2, max_positive_share=0.9)
    Path("metrics/labels.json").write_text(json.dumps({"gate": {"failed": len(info.value.failures),
                                                                "failures": info.value.failures}}))
    out = _register(stage, 91.0)
    assert out["alias"] == "candidate" and out["reasons"][0].startswith("gate metrics/labels.json: 1 failed expectation(s)")
    assert "zeros_after_first_zero" in out["reasons"][0]

    # 4. clean data again: a model no better than the champion (by min_delta) stays candidate ...
    assert _run_labels(stage, Path.cwd(), defect=False) == 0
    out = _register(stage, 85.4)
    assert out["alias"] == "candidate" and "does not beat the champion's 85" in out["reasons"][0]
    # ... one below the threshold too, and a better one becomes champion
    assert _register(stage, 79.0)["reasons"] == [f"{F1} = 79 fails threshold >= 80",
                                          f"{F1} = 79 does not beat the champion's 85 (needs above 85.5)"]
    out = _register(stage, 86.0)
    assert out["version"] == "6" and out["alias"] == "champion" and out["previous_champion"] == "1"
    assert str(client.get_model_version_by_alias("genprm", "champion").version) == "6"
    assert client.get_model_version("genprm", "6").tags["promotion.previous_champion"] == "1"


def test_register_model_with_any_logger_and_champion_value_fallbacks(mlflow_uri, tmp_path, monkeypatch):
    """register_model takes any ``log_model`` that registers a pyfunc; the champion's values are read
    from its promotion.metrics tag, else its metric.<spec> tags, else the metrics of its run."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from genprm.registry import champion_metrics, register_model

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, model_input: list[str], params: dict | None = None) -> list[str]:
            return model_input

    def log_model(*, model_dir, registered_model_name):
        return mlflow.pyfunc.log_model(name="echo", python_model=Echo(), pip_requirements=[],
                                       registered_model_name=registered_model_name)

    monkeypatch.chdir(tmp_path)
    cfg = _cfg(model_name="echo")
    assert champion_metrics("echo", [F1]) is None
    result = register_model(None, cfg, _decide(), log_model=log_model, tags={"lineage.x": "1"})
    assert result.promoted and result.alias == "champion" and result.version == "1"
    client = MlflowClient(mlflow_uri)
    assert client.get_model_version("echo", "1").tags["lineage.x"] == "1"
    assert champion_metrics("echo", [F1]).metrics[F1] == 85.0
    client.delete_model_version_tag("echo", "1", "promotion.metrics")
    assert champion_metrics("echo", [F1]).metrics == {F1: 85.0}  # from metric.<spec>
    client.delete_model_version_tag("echo", "1", "metric.metrics/eval_world.json:processbench.pass_at_1.average_f1")
    assert champion_metrics("echo", [F1]).metrics == {F1: 85.0}  # from the register run's metrics
    blocked = register_model(None, cfg, _decide(champion={F1: 85.0}), log_model=log_model)
    assert (blocked.alias, blocked.version) == ("candidate", "2")
    assert client.get_model_version("echo", "2").tags["promotion"] == "blocked"
    assert str(client.get_model_version_by_alias("echo", "champion").version) == "1"
