"""genprm.bands on small dicts: lookup, band, the per-run criteria (they fail when they should), and
``genprm bands compare`` on a temp folder."""

from __future__ import annotations

import copy
import json

import pytest

from genprm import bands
from genprm.cli import main

PARAMS = {"policy": {"error_share": 0.35, "arithmetic_share": 0.4}, "labels": {"epsilon": 0.8}}


def _metrics(acc=0.64, arith=0.45, pass1=87.0, maj=88.0, majority=80.0, prm_min=81.0, prm_vote=90.0,
             critic=90.0, self_=60.0) -> dict:
    return {
        "policy": {"eval": {"accuracy": acc, "first_error_share": {"arithmetic": arith, "copy": 1 - arith}}},
        "processbench": {"pass@1": {"average_f1": pass1, "error_acc_by_kind": {"copy": {"error_acc": 60.0}}},
                         "maj@4": {"average_f1": maj}},
        "best_of_n": {"curves": {"majority": {"8": majority}, "prm_min": {"8": prm_min}, "prm_vote": {"8": prm_vote},
                                 "pass_at_k": {"8": 95.0}}},
        "critic": {"accuracy": {"critic": [60.0, 80.0, critic], "self": [60.0, 62.0, self_]}},
        "labels": {"quality": {"rpe@0.5": {"f1": 0.5}, "rpe@0.8": {"f1": 0.94}, "rpe@1.0": {"f1": 0.7}}},
        "synthesis": {"consensus": {"kept": 1140}},
    }


def _run(seed, kp, **kw) -> dict:
    return {"seed": seed, "kernel_path": kp, "name": f"bands-s{seed}-{kp}", "metrics": _metrics(**kw),
            "params": copy.deepcopy(PARAMS)}


def test_lookup_handles_at_keys_wildcards_list_ends_and_param_templates():
    m = _metrics()
    assert bands.lookup(m, "processbench:pass@1.average_f1") == 87.0
    assert bands.lookup(m, "processbench:maj@*.average_f1") == 88.0
    assert bands.lookup(m, "best_of_n:curves.prm_*.8") == 90.0  # the best aggregation
    assert bands.lookup(m, "critic:accuracy.self.-1") == 60.0
    assert bands.lookup(m, "labels:quality.rpe@{labels.epsilon}.f1", PARAMS) == 0.94
    assert bands.lookup(m, "labels:quality.rpe@1.0.f1") == 0.7
    assert bands.lookup(m, "policy:eval.nope") is None and bands.lookup(m, "nofile:x") is None


def test_band_is_min_median_max():
    assert bands.band([3.0, None, 1.0, 2.0, 10.0]) == {"min": 1.0, "median": 2.5, "max": 10.0}
    assert bands.band([None]) == {"min": None, "median": None, "max": None}


def test_collect_writes_the_bands_json_shape():
    runs = [_run(1, "avx2", acc=0.66), _run(0, "native"), _run(0, "avx2", acc=0.62), _run(1, "native")]
    out = bands.collect(runs)
    assert out["runs"][0] == {"seed": 0, "kernel_path": "avx2", "name": "bands-s0-avx2"}
    assert [(r["seed"], r["kernel_path"]) for r in out["runs"]] == [(0, "avx2"), (0, "native"), (1, "avx2"),
                                                                    (1, "native")]
    acc = out["metrics"]["policy accuracy"]
    assert acc["source"] == "policy:eval.accuracy"
    assert (acc["min"], acc["median"], acc["max"]) == (0.62, 0.64, 0.66)
    assert acc["values"][0] == {"seed": 0, "kernel_path": "avx2", "value": 0.62}
    assert out["metrics"]["labels RPE F1"]["source"] == "labels:quality.rpe@0.8.f1"
    assert {m.name for m in bands.HEADLINE} == set(out["metrics"])
    for c in out["criteria"].values():
        assert c["all_ok"] and len(c["held"]) == 4 and c["ok_runs"] == c["runs"] == 4
        assert {"rule", "held", "ok_runs", "runs", "all_ok"} == set(c)
        assert set(c["held"][0]) == {"seed", "kernel_path", "value", "ok"}
    json.dumps(out)  # JSON-ready


@pytest.mark.parametrize("change, criterion", [
    ({"acc": 0.58}, "policy accuracy"),                     # 1 - 0.35 = 0.65, off by 0.07
    ({"arith": 0.55}, "first-error arithmetic share"),     # 0.4 + 0.15
    ({"pass1": 84.0, "maj": 84.0}, "ProcessBench Pass@1"),
    ({"maj": 86.0}, "ProcessBench Maj@N"),                  # 87 - 1
    ({"prm_vote": 84.0, "prm_min": 82.0}, "Best-of-8 best PRM"),
    ({"prm_min": 79.0}, "Best-of-8 PRM-Min"),
    ({"self_": 85.0}, "critic"),
])
def test_each_criterion_fails_when_it_should(change, criterion):
    out = bands.collect([_run(0, "native"), _run(1, "native", **change)])
    failed = {name for name, c in out["criteria"].items() if not c["all_ok"]}
    assert failed == {criterion}
    assert [h["ok"] for h in out["criteria"][criterion]["held"]] == [True, False]
    assert out["criteria"][criterion]["ok_runs"] == 1


def test_missing_metrics_fail_the_criteria_that_need_them():
    run = _run(0, "native")
    del run["metrics"]["critic"]
    out = bands.collect([run])
    assert out["metrics"]["critic last turn"]["values"][0]["value"] is None
    assert out["criteria"]["critic"]["held"][0] == {"seed": 0, "kernel_path": "native", "value": None, "ok": False}


def test_plot_bands_writes_a_png(tmp_path):
    out = bands.collect([_run(0, "native"), _run(0, "avx2", acc=0.62)])
    bands.plot_bands(out, tmp_path / "bands.png")
    assert (tmp_path / "bands.png").read_bytes()[:4] == b"\x89PNG"


def _write_metrics(folder, metrics):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in metrics.items():
        (folder / f"{stem}.json").write_text(json.dumps(data))


def test_cli_compare_prints_the_table_and_says_outside(tmp_path, capsys):
    (tmp_path / "bands.json").write_text(json.dumps(bands.collect([_run(0, "native"), _run(1, "avx2", acc=0.66)])))
    _write_metrics(tmp_path / "metrics", _metrics(acc=0.70))
    assert main(["bands", "compare", "--bands", str(tmp_path / "bands.json"), "--metrics",
                 str(tmp_path / "metrics")]) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "this run" in out and "band (min–max)" in out and "inside?" in out
    [row] = [line for line in out.splitlines() if line.startswith("policy accuracy ")]
    assert "0.7" in row and "0.64 – 0.66" in row and "OUTSIDE" in row
    assert "1 metric(s) outside the band of 2 runs: policy accuracy." in out
    [row] = [line for line in out.splitlines() if line.startswith("critic last turn")]
    assert row.rstrip().endswith("yes")

    _write_metrics(tmp_path / "metrics", _metrics())
    main(["bands", "compare", "--bands", str(tmp_path / "bands.json"), "--metrics", str(tmp_path / "metrics")])
    assert "Every headline metric is inside the band of 2 runs." in capsys.readouterr().out


def test_cli_compare_without_bands_says_so(tmp_path, capsys):
    assert main(["bands", "compare", "--bands", str(tmp_path / "none.json"), "--metrics", str(tmp_path)]) == 0
    assert "No bands yet" in capsys.readouterr().out


def test_log_runs_makes_one_parent_with_a_child_per_cell(mlflow_uri, tmp_path):
    import mlflow

    out = bands.collect([_run(0, "native"), _run(0, "avx2", acc=0.62)])
    (tmp_path / "bands.json").write_text(json.dumps(out))
    parent_id = bands.log_runs(out, artifacts=[tmp_path / "bands.json"])
    client = mlflow.MlflowClient(mlflow_uri)
    parent = client.get_run(parent_id)
    assert parent.data.tags["genprm.kind"] == "bands" and parent.info.status == "FINISHED"
    assert parent.data.metrics["policy_accuracy.min"] == 0.62
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.data.params["kernel_path"] for c in children) == ["avx2", "native"]
    [avx2] = [c for c in children if c.data.params["kernel_path"] == "avx2"]
    assert avx2.data.metrics["policy_accuracy"] == 0.62 and avx2.data.metrics["ProcessBench_F1_Pass_at_1"] == 87.0
    assert avx2.info.run_name == "bands-s0-avx2"
    assert [a.path for a in client.list_artifacts(parent_id)] == ["bands.json"]
