"""The GenPRM verifier served through MLflow: pyfunc predict, input validation, the real server.

Fast tests load the logged ``world-teacher`` model with ``mlflow.pyfunc.load_model`` (real
engine, real sandbox, real sqlite store) and compare its answers with the world's exact checker.
The ``server`` test registers it, aliases it ``champion`` and talks to
``mlflow models serve -m models:/genprm@champion`` over HTTP.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from genprm.serving import ModelServer, ServingLimits, group_members, log_verifier_model, parse_records, serving_config


def _records(cases):
    return [{"problem": p, "steps": s} for p, s, _, _ in cases]


def _expected_rewards(n_steps: int, first_error: int) -> list[float]:
    cut = n_steps if first_error < 0 else first_error
    return [1.0 if t < cut else 0.0 for t in range(n_steps)]


def _check_answers(answers: list[dict], cases) -> None:
    assert len(answers) == len(cases)
    for ans, (problem, steps, truth, kind) in zip(answers, cases):
        assert ans["first_error"] == truth, (kind, problem, steps, ans["first_error"])
        assert ans["rewards"] == _expected_rewards(len(steps), truth), (kind, problem, steps)
        assert len(ans["rationales"]) == len(steps)
        assert list(ans["forced"]) == [0.0] * len(steps)  # every judgement parsed: none forced
        for t, text in enumerate(ans["rationales"]):
            assert f"Paragraph {t + 1}" in text and "[Code Output]" in text
            verdict = "Yes" if ans["rewards"][t] == 1.0 else "No"
            assert text.rstrip().endswith(f"\\boxed{{{verdict}}}$\n</output>".rstrip())


# ------------------------------------------------------------------------------- pure helpers
def test_parse_records_accepts_frames_records_and_arrays():
    frame = pd.DataFrame({"problem": ["Compute 1 + 2."], "steps": [np.array(["1 + 2 = 3. The answer is 3."])]})
    assert parse_records(frame) == [("Compute 1 + 2.", ["1 + 2 = 3. The answer is 3."])]
    assert parse_records({"problem": "p", "steps": ("a", "b")}) == [("p", ["a", "b"])]
    assert parse_records([{"problem": "p", "steps": ["a"], "extra": 1}]) == [("p", ["a"])]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "no records"),
        ([{"problem": "p", "steps": ["a"]}, {"steps": ["a"]}], "record 1: field 'problem' must be a string, got null"),
        ([{"problem": "  ", "steps": ["a"]}], "record 0: field 'problem' is empty"),
        ([{"problem": "p", "steps": "a"}], "record 0: field 'steps' must be a list of strings, got str"),
        ([{"problem": "p", "steps": []}], "record 0: field 'steps' is empty"),
        ([{"problem": "p", "steps": ["a", 3]}], r"record 0: field 'steps\[1\]' must be a string, got int"),
        ([{"problem": "p", "steps": ["a"] * 4}], "record 0: field 'steps' has 4 steps; at most 3"),
        ([{"problem": "p", "steps": ["a" * 11]}], r"record 0: field 'steps\[0\]' has 11 characters; at most 10"),
        ([{"problem": "p" * 21, "steps": ["a"]}], "record 0: field 'problem' has 21 characters; at most 20"),
        ([{"problem": "p", "steps": ["a"]}] * 3, "3 records; at most 2"),
        (["p"], "record 0: expected an object"),
    ],
)
def test_parse_records_names_record_and_field(records, message):
    limits = ServingLimits(max_records=2, max_steps=3, max_step_chars=10, max_problem_chars=20)
    with pytest.raises(ValueError, match=message):
        parse_records(records, limits)


def test_serving_config_validates_early():
    cfg = serving_config("world-teacher", {"noise": 0.1}, options={"n_paths": 3, "threshold": 0.4})
    assert cfg["engine"] == {"backend": "world-teacher", "settings": {"noise": 0.1}, "artifact_settings": []}
    assert cfg["verifier"]["n_paths"] == 3 and cfg["verifier"]["threshold"] == 0.4
    with pytest.raises(ValueError, match="did you mean 'world-teacher'"):
        serving_config("world-teachr")
    with pytest.raises(ValueError, match=r"unknown settings \['nosie'\]"):
        serving_config("world-teacher", {"nosie": 0.1})
    with pytest.raises(ValueError, match="shipped as model artifacts"):
        serving_config("hf", {"model": "x"}, artifact_settings=["model"])
    with pytest.raises(ValueError, match="n_paths"):
        serving_config("world-teacher", options={"n_paths": 0})
    with pytest.raises(ValueError, match="max_steps"):
        serving_config("world-teacher", limits={"max_steps": 0})
    with pytest.raises(ValueError, match="alias needs registered_model_name"):
        log_verifier_model("x", "world-teacher", alias="champion")


# ------------------------------------------------------------------------- the logged model
def test_logged_model_carries_signature_and_config(world_model):
    import mlflow

    info = mlflow.models.get_model_info(world_model.model_uri)
    inputs = info.signature.inputs.to_dict()
    assert [c["name"] for c in inputs] == ["problem", "steps"]
    assert inputs[1]["type"] == "array" and inputs[1]["items"]["type"] == "string"
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["rewards", "first_error", "rationales", "forced"]
    config = info.flavors["python_function"]["config"]  # MLmodel keeps model_config here
    assert config["engine"]["backend"] == "world-teacher"
    assert config["verifier"]["n_paths"] == 2 and config["limits"]["max_steps"] == 6
    alias = mlflow.MlflowClient().get_model_version_by_alias("genprm", "champion")
    assert str(alias.version) == str(world_model.registered_model_version)


def test_predict_matches_world_checker(loaded_model, world_cases):
    out = loaded_model.predict(_records(world_cases))
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["rewards", "first_error", "rationales", "forced"]
    _check_answers(out.to_dict(orient="records"), world_cases)
    kinds = {kind for _, _, truth, kind in world_cases if truth >= 0}
    assert kinds == {"arithmetic", "copy"}
    assert any(truth > 0 for _, _, truth, _ in world_cases)  # errors not only at step 0


def test_served_answers_say_which_judgements_were_forced(mlflow_store, world_cases):
    """With no code round allowed every judgement is forced: the answer says so and passes no step on a guess."""
    import mlflow

    from genprm.serving import log_verifier_model

    info = log_verifier_model("genprm-forced", "world-teacher", {}, options={"max_code_rounds": 0},
                              sandbox={"timeout_s": 5.0}, artifact_location=mlflow_store["artifacts"])
    model = mlflow.pyfunc.load_model(info.model_uri)
    try:
        answers = model.predict(_records(world_cases[:3])).to_dict(orient="records")
    finally:
        model.unwrap_python_model().close()
    for ans, (_, steps, _, _) in zip(answers, world_cases[:3]):
        assert list(ans["forced"]) == [1.0] * len(steps)
        assert ans["first_error"] == 0 and all(r < 1e-6 for r in ans["rewards"])


def test_predict_takes_a_dataframe_and_keeps_one_engine(loaded_model, world_cases):
    server = loaded_model.unwrap_python_model()
    engine, sandbox = server._generator, server._sandbox
    frame = pd.DataFrame(_records(world_cases[:3]))
    first = loaded_model.predict(frame).to_dict(orient="records")
    again = loaded_model.predict(frame).to_dict(orient="records")
    assert first == again
    _check_answers(first, world_cases[:3])
    assert server._generator is engine and server._sandbox is sandbox and sandbox.alive


def test_concurrent_predicts_share_the_engine(loaded_model, world_cases):
    results: dict[int, list[dict]] = {}
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            cases = world_cases[i::4]
            results[i] = loaded_model.predict(_records(cases)).to_dict(orient="records")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for i in range(4):
        _check_answers(results[i], world_cases[i::4])


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"problem": "Compute 1 + 2."}], "missing inputs ['steps']"),
        ([{"problem": "Compute 1 + 2.", "steps": ["1 + 2 = 3"]}, {"problem": "Compute 1 + 2.", "steps": []}],
         "record 1: field 'steps' is empty"),
        ([{"problem": "", "steps": ["1 + 2 = 3"]}], "record 0: field 'problem' is empty"),
        ([{"problem": "Compute 1 + 2.", "steps": ["1 + 2 = 3"] * 7}], "record 0: field 'steps' has 7 steps; at most 6"),
        ([{"problem": "Compute 1 + 2.", "steps": ["1" * 201]}], "record 0: field 'steps[0]' has 201 characters"),
        ([{"problem": "Compute 1 + 2.", "steps": ["1 + 2 = 3"]}] * 17, "17 records; at most 16"),
    ],
)
def test_bad_input_raises_invalid_parameter(loaded_model, records, message):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        loaded_model.predict(records)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.get_http_status_code() == 400
    assert message in info.value.message


# ---------------------------------------------------------------------------- the real server
@pytest.mark.server
@pytest.mark.slow
def test_mlflow_models_serve_answers_and_rejects(world_model, world_cases, mlflow_store, tmp_path):
    import httpx

    server = ModelServer("models:/genprm@champion", tracking_uri=mlflow_store["uri"], log_path=tmp_path / "server.log",
                         start_timeout_s=180)
    server.start()
    pgid = server.proc.pid
    try:
        url = server.url + "/invocations"
        with httpx.Client(timeout=60) as client:
            r = client.post(url, json={"dataframe_records": _records(world_cases)})
            assert r.status_code == 200, r.text
            _check_answers(r.json()["predictions"], world_cases)
            # the split orientation works as well
            split = {"columns": ["problem", "steps"], "data": [[p, s] for p, s, _, _ in world_cases[:2]]}
            r = client.post(url, json={"dataframe_split": split})
            assert r.status_code == 200, r.text
            _check_answers(r.json()["predictions"], world_cases[:2])

            good = {"problem": "Compute 1 + 2.", "steps": ["1 + 2 = 3. The answer is 3."]}
            bad_requests = [
                ([{"problem": "Compute 1 + 2."}], "missing inputs ['steps']"),
                ([{"steps": ["1 + 2 = 3"]}], "missing inputs ['problem']"),
                ([good, {"problem": "Compute 1 + 2.", "steps": "1 + 2 = 3"}], "column steps"),  # not a list
                ([good, {"problem": "Compute 1 + 2.", "steps": []}], "record 1: field 'steps' is empty"),
                ([{"problem": "   ", "steps": ["1 + 2 = 3"]}], "record 0: field 'problem' is empty"),
            ]
            for records, field in bad_requests:
                r = client.post(url, json={"dataframe_records": records})
                assert 400 <= r.status_code < 500, (records, r.status_code, r.text)
                body = r.json()
                assert field in body["message"], (records, body["message"])
                assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")
            r = client.post(url, content=b"not json", headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500
            # still healthy after bad requests
            r = client.post(url, json={"dataframe_records": [good]})
            assert r.status_code == 200 and r.json()["predictions"][0]["first_error"] == -1
    finally:
        server.stop()
    assert group_members(pgid) == []  # the CLI and its uvicorn are gone


# ------------------------------------------------------------------ folders shipped as artifacts
@pytest.mark.slow
def test_engine_folders_ship_inside_the_model(mlflow_store, tmp_path):
    """A folder setting travels as a model artifact: the loaded engine reads the model's copy."""
    import shutil

    import mlflow

    from genprm.world.tokenizer import train_tokenizer

    tok_dir = tmp_path / "tokenizer"
    train_tokenizer(["Compute 3 + 4.", "3 + 4 = 7. The answer is 7."] * 5, vocab_size=300).save_pretrained(tok_dir)
    settings = {"model": "tiny", "base_url": "http://127.0.0.1:9/v1"}  # never called: load only
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        log_verifier_model("shipped", "openai", settings, artifact_settings={"tokenizer": tmp_path / "missing"})
    info = log_verifier_model("shipped", "openai", settings, artifact_settings={"tokenizer": tok_dir},
                              artifact_location=mlflow_store["artifacts"])
    config = mlflow.models.get_model_info(info.model_uri).flavors["python_function"]["config"]
    assert config["engine"]["artifact_settings"] == ["tokenizer"] and "tokenizer" not in config["engine"]["settings"]
    shutil.rmtree(tok_dir)  # the served model must not need the original folder
    model = mlflow.pyfunc.load_model(info.model_uri)
    try:
        server = model.unwrap_python_model()
        loaded_from = server._generator.tokenizer.name_or_path
        assert loaded_from != str(tok_dir) and loaded_from.endswith("tokenizer")
        assert server._generator.tokenizer("3 + 4 = 7")["input_ids"]
    finally:
        model.unwrap_python_model().close()
