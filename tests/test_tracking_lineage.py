"""Parent/child MLflow runs and stage lineage, against a real sqlite store (and real DVC for the hashes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from genprm import cli, tracking

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def store(mlflow_uri, monkeypatch):
    """A fresh sqlite store (tests/conftest.py), stage tracking on and strict; an MlflowClient on it."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("GENPRM_TRACKING", "1")
    monkeypatch.setenv("GENPRM_TRACKING_STRICT", "1")
    return MlflowClient(mlflow_uri)


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_safe_key():
    assert tracking.safe_key("processbench.pass@1.average_f1") == "processbench.pass_at_1.average_f1"
    assert tracking.safe_key("a/b.json:c d-e") == "a/b.json:c d-e"
    assert tracking.safe_key("x*y?") == "x_y_"


def test_pipeline_run_nests_in_process_and_subprocess_runs(store, tmp_path):
    child = textwrap.dedent("""
        from genprm import tracking
        with tracking.start_run("sub", tags={"where": "subprocess"}):
            tracking.log_metrics({"pass@1": {"f1": 0.5}})
    """)
    with tracking.pipeline_run("pipeline", tags={"flow": "test"}, experiment="nest") as parent:
        pid = parent.info.run_id
        assert os.environ[tracking.PARENT_RUN_ENV] == pid
        with tracking.start_run("inproc"):
            tracking.log_metrics({"x": 1})
        subprocess.run([sys.executable, "-c", child], check=True, cwd=tmp_path, timeout=120)
    assert tracking.PARENT_RUN_ENV not in os.environ  # restored
    runs = _runs(store, "nest")  # children land in the parent's experiment
    assert set(runs) == {"pipeline", "inproc", "sub"}
    assert runs["pipeline"].data.tags["genprm.kind"] == "pipeline" and runs["pipeline"].data.tags["flow"] == "test"
    assert "mlflow.parentRunId" not in runs["pipeline"].data.tags
    for name in ("inproc", "sub"):
        assert runs[name].data.tags["mlflow.parentRunId"] == pid
        assert runs[name].info.status == "FINISHED"
    assert runs["sub"].data.metrics == {"pass_at_1.f1": 0.5}


def test_pipeline_run_default_store_restores_env(store, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default store is ./mlflow.db, the fixture's copy
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    with tracking.pipeline_run("p", experiment="fresh"):
        assert os.environ["MLFLOW_TRACKING_URI"] == mlflow_uri.replace(str(tmp_path), str(tmp_path.resolve()))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", tracking.PARENT_RUN_ENV):
        assert name not in os.environ, name  # mlflow sets the first two itself; put back as they were
    mlruns = tmp_path.resolve() / "mlruns"
    assert store.get_experiment_by_name("fresh").artifact_location == (mlruns / "fresh").as_uri()
    # with the store named by MLFLOW_TRACKING_URI, artifacts still go beside the sqlite database
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    tracking.configure(experiment="later")
    assert store.get_experiment_by_name("later").artifact_location == (mlruns / "later").as_uri()


def test_unknown_parent_id_gives_a_top_level_run(store, monkeypatch):
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, "0" * 32)
    with tracking.start_run("orphan", experiment="orphan") as run:
        pass
    assert "mlflow.parentRunId" not in store.get_run(run.info.run_id).data.tags


def test_track_command_wraps_a_command_in_a_parent_run(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    child = "from genprm import tracking\nwith tracking.start_run('stage-a'): tracking.log_metrics({'m': 2})"
    assert cli.main(["track", "--experiment", "track", "--", sys.executable, "-c", child]) == 0
    assert cli.main(["track", "--experiment", "track", "--name", "broken", "--",
                     sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert cli.main(["track"]) == 2
    runs = _runs(store, "track")
    assert runs["pipeline"].info.status == "FINISHED" and runs["pipeline"].data.tags["genprm.exit_code"] == "0"
    assert runs["stage-a"].data.tags["mlflow.parentRunId"] == runs["pipeline"].info.run_id
    assert runs["broken"].info.status == "FAILED" and runs["broken"].data.tags["genprm.exit_code"] == "3"
    assert tracking.PARENT_RUN_ENV not in os.environ


def _lineage():
    import lineage  # stages/lineage.py (tests/conftest.py puts stages/ on sys.path)

    return lineage


def test_stage_run_logs_params_metrics_artifacts_and_lineage(store, tmp_path, monkeypatch):
    lineage = _lineage()
    monkeypatch.chdir(tmp_path)
    Path("data").mkdir()
    Path("data/in.jsonl").write_text('{"a": 1}\n')
    Path("data/dir").mkdir()
    Path("data/dir/x.txt").write_text("x")
    Path("metrics").mkdir()
    Path("metrics/s.json").write_text(json.dumps({"processbench": {"pass@1": {"f1": 81.5}}, "n": 3, "ok": True,
                                                  "gate": {"failed": 0, "failures": []}}))
    Path("plot.json").write_text("[]")
    Path("dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "true", "deps": ["data/in.jsonl", "data/dir"], "outs": ["out.txt"],
        "metrics": [{"metrics/s.json": {"cache": False}}]}}}))
    Path("out.txt").write_text("out")
    with tracking.pipeline_run("pipeline", experiment="lineage") as parent:
        rid = lineage.log_stage_run("s", {"lr": 0.1, "lora": {"r": 8}}, ["metrics/s.json"], ["plot.json"],
                                    {"extra": "yes"}, inputs=["data/in.jsonl", "data/dir"],
                                    series={"loss": [(1, 2.0), (2, 1.0)]},
                                    timings={"seconds": 4.5, "train": {"train_seconds": 4.0}})
    run = store.get_run(rid)
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert tags["genprm.stage"] == "s" and tags["genprm.kind"] == "stage" and tags["extra"] == "yes"
    assert tags["genprm.git_commit"] == "unknown"  # tmp_path is not a git repository
    assert tags["dvc.dep.data/in.jsonl"] == lineage.file_md5("data/in.jsonl")
    assert tags["dvc.dep.data/dir"] == lineage.path_md5("data/dir") and tags["dvc.dep.data/dir"].endswith(".dir")
    assert tags["dvc.out.out.txt"] == lineage.file_md5("out.txt")
    assert tags["dvc.out.metrics/s.json"] == lineage.file_md5("metrics/s.json")
    assert tags["data.in.data/in.jsonl"] == lineage.file_md5("data/in.jsonl") and len(tags["data.md5"]) == 32
    assert run.data.params == {"lr": "0.1", "lora.r": "8"}
    assert run.data.metrics == {"processbench.pass_at_1.f1": 81.5, "n": 3.0, "gate.failed": 0.0, "loss": 1.0,
                                "seconds": 4.5, "train.train_seconds": 4.0}  # timings: MLflow only, not metrics/
    assert sorted(a.path for a in store.list_artifacts(rid)) == ["plot.json", "s.json"]
    # the data hash follows the data
    Path("data/in.jsonl").write_text('{"a": 2}\n')
    assert lineage.lineage_tags("s", ["data/in.jsonl", "data/dir"])["data.md5"] != tags["data.md5"]


def test_stage_tracking_off_and_failures_do_not_fail_the_stage(store, tmp_path, monkeypatch):
    lineage = _lineage()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENPRM_TRACKING", "0")
    assert lineage.log_stage_run("s", {"a": 1}) is None
    monkeypatch.setenv("GENPRM_TRACKING", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    monkeypatch.delenv("GENPRM_TRACKING_STRICT")
    assert lineage.log_stage_run("s", {"a": 1}) is None  # logged, not raised
    monkeypatch.setenv("GENPRM_TRACKING_STRICT", "1")
    with pytest.raises(Exception):
        lineage.log_stage_run("s", {"a": 1})


@pytest.mark.slow
def test_track_dvc_repro_children_carry_the_hashes_dvc_lock_records(store, tmp_path):
    """``genprm track -- dvc repro`` on a two-stage pipeline: one parent, a child per stage whose
    ``dvc.*`` tags equal the md5s DVC writes into dvc.lock for that run."""
    (tmp_path / "stages").mkdir()
    shutil.copy2(REPO / "stages" / "lineage.py", tmp_path / "stages" / "lineage.py")
    (tmp_path / "stages" / "step.py").write_text(textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from lineage import log_stage_run
        name, src, dst = sys.argv[1:4]
        Path(dst).mkdir(exist_ok=True)
        (Path(dst) / "rows.txt").write_text(Path(src if Path(src).is_file() else Path(src) / "rows.txt").read_text() * 2)
        Path(f"{name}.json").write_text(json.dumps({"rows": 2}))
        log_stage_run(name, {"factor": 2}, [f"{name}.json"], inputs=[src])
    """))
    (tmp_path / "raw.txt").write_text("r\n")
    stage = lambda name, src, dst: {"cmd": f"python stages/step.py {name} {src} {dst}",  # noqa: E731
                                    "deps": ["stages/step.py", src], "outs": [dst],
                                    "metrics": [{f"{name}.json": {"cache": False}}]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"one": stage("one", "raw.txt", "d1"),
                                                                  "two": stage("two", "d1", "d2")}}))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env, timeout=120)
    genprm = shutil.which("genprm", path=env["PATH"])
    proc = subprocess.run([genprm, "track", "--experiment", "dvc", "--", sys.executable, "-m", "dvc", "repro"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _runs(store, "dvc")
    assert set(runs) == {"pipeline", "one", "two"}
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]
    for name in ("one", "two"):
        tags = runs[name].data.tags
        assert tags["mlflow.parentRunId"] == runs["pipeline"].info.run_id
        for kind in ("deps", "outs"):
            for entry in lock[name][kind]:
                assert tags[f"dvc.{kind[:-1]}.{entry['path']}"] == entry["md5"], (name, entry)
    assert runs["two"].data.tags["data.in.d1"] == runs["one"].data.tags["dvc.out.d1"]  # lineage links up
