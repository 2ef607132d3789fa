"""``make bands``'s driver (bench/bands.py) and the Prefect flow (flows/bands.py) on a toy DVC project.

The toy project is a temp git + DVC repository with one stage whose command is written like the
real ones (``python -m genprm.kernels ${kernel_path} -- python toy.py --seed ${seed}``) and writes
metrics files shaped like the pipeline's: the values depend on the seed and on whether the kernel
path's variables reached the process, so the bands prove both got through DVC's experiments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TOY = '''
import argparse, json, os
from pathlib import Path
ap = argparse.ArgumentParser(); ap.add_argument("--seed", type=int); seed = ap.parse_args().seed
if seed == 9:
    raise SystemExit("toy: seed 9 fails")
avx2 = os.environ.get("ATEN_CPU_CAPABILITY") == "avx2"      # set by python -m genprm.kernels avx2
out = Path("metrics"); out.mkdir(exist_ok=True)
def dump(stem, data): (out / f"{stem}.json").write_text(json.dumps(data))
dump("policy", {"eval": {"accuracy": 0.6 + 0.01 * seed + (0.001 if avx2 else 0.0),
                         "first_error_share": {"arithmetic": 0.45}}})
dump("processbench", {"pass@1": {"average_f1": 86.0 + seed}, "maj@4": {"average_f1": 87.0 + seed}})
dump("best_of_n", {"curves": {"majority": {"8": 80.0}, "prm_min": {"8": 81.0}, "prm_vote": {"8": 90.0 + seed}}})
dump("critic", {"accuracy": {"critic": [60.0, 90.0], "self": [60.0, 70.0 + 15 * seed]}})
'''

DVC_YAML = {"stages": {"toy": {
    "cmd": "python -m genprm.kernels ${kernel_path} -- python toy.py --seed ${seed}",
    "deps": ["toy.py"],
    "params": ["seed", "policy"],
    "metrics": [{f"metrics/{s}.json": {"cache": False}} for s in ("policy", "processbench", "best_of_n", "critic")],
}}}
PARAMS = {"seed": 0, "kernel_path": "native", "policy": {"error_share": 0.35, "arithmetic_share": 0.4}}


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture()
def toy_repo(tmp_path, repo, monkeypatch) -> Path:
    root = tmp_path / "toy"
    root.mkdir()
    (root / "toy.py").write_text(TOY)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (root / ".gitignore").write_text("/mlflow.db\n/mlruns/\n/work/\n")
    # DVC runs the stage (here and in the experiments' temporary copies) in a fresh process: it imports this genprm
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(repo / "src"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "config", "user.name", "test")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "toy pipeline")
    return root


def _check_bands(result: dict, seeds=(0, 1), paths=("native", "avx2")) -> None:
    assert [(r["seed"], r["kernel_path"]) for r in result["runs"]] == sorted(
        (s, p) for s in seeds for p in paths)
    assert all(r["name"] == f"bands-s{r['seed']}-{r['kernel_path']}" for r in result["runs"])
    acc = {(v["seed"], v["kernel_path"]): v["value"] for v in result["metrics"]["policy accuracy"]["values"]}
    # the seed reached the command through ${seed}; the avx2 variables reached the process through genprm.kernels
    assert acc == pytest.approx({(s, p): 0.6 + 0.01 * s + (0.001 if p == "avx2" else 0) for s in seeds for p in paths})
    band = result["metrics"]["policy accuracy"]
    assert (band["min"], band["max"]) == pytest.approx((0.6, 0.611))
    assert result["metrics"]["ProcessBench F1 Maj@N"]["source"] == "processbench:maj@*.average_f1"
    crit = result["criteria"]
    assert crit["policy accuracy"]["all_ok"] and crit["ProcessBench Maj@N"]["all_ok"]
    assert crit["first-error arithmetic share"]["all_ok"]  # 0.45 vs 0.4
    # Pass@1 >= 85 held by every seed; critic - self >= 10 only at seed 0 (self rises 15 a seed)
    assert [h["ok"] for h in crit["critic"]["held"]] == [s == 0 for s in seeds for _ in paths]
    assert not crit["critic"]["all_ok"]


@pytest.mark.slow
@pytest.mark.timeout(600)  # 5 toy experiments, two at a time: ~20 s alone, several times that on a busy machine
def test_make_bands_driver_runs_cells_and_collects(toy_repo, repo, load_script, mlflow_uri):
    import mlflow

    driver = load_script(repo / "bench" / "bands.py")
    result = driver.sweep(toy_repo, seeds=[0, 1], kernel_paths=["native", "avx2"], jobs=2)
    _check_bands(result)
    assert json.loads((toy_repo / "metrics/bands.json").read_text()) == result
    assert (toy_repo / "plots/bands.png").read_bytes()[:4] == b"\x89PNG"
    # the workspace keeps its params; the cells are experiments of the baseline
    assert yaml.safe_load((toy_repo / "params.yaml").read_text()) == PARAMS
    show = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=toy_repo, check=True,
                          capture_output=True, text=True).stdout
    assert {r["name"] for r in driver._walk_experiments(json.loads(show))} >= {c["name"] for c in result["runs"]}

    client = mlflow.MlflowClient(mlflow_uri)
    [parent] = client.search_runs([client.get_experiment_by_name("genprm").experiment_id],
                                  "tags.`genprm.kind` = 'bands'")
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 4

    # a second sweep replaces the cells of the first (same names, -f) instead of failing on them; a cell
    # that fails (seed 9) is left out and the others are still run and collected
    again = driver.sweep(toy_repo, seeds=[9, 0], kernel_paths=["avx2"], jobs=1, track=False)
    assert [r["name"] for r in again["runs"]] == ["bands-s0-avx2"]
    assert "toy: seed 9 fails" in (toy_repo / "work/bands/bands-s9-avx2.log").read_text()  # each cell's DVC output


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_prefect_bands_flow_runs_each_cell_and_collects(toy_repo, repo, load_script, prefect_harness):
    flows = load_script(repo / "flows" / "bands.py")
    result = flows.bands_sweep(repo=str(toy_repo), seeds=[0, 1], kernel_paths=["native", "avx2"], track=False)
    _check_bands(result)
    assert json.loads((toy_repo / "metrics/bands.json").read_text()) == result
    dep = flows.build_cell_deployment(repo, pool="gpu-x")  # code from this repository (the toy has no flows)
    assert dep.full_name == flows.CELL_DEPLOYMENT and dep.entrypoint == "flows/bands.py:cell"
