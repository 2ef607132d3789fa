"""Deployments and sharded stages on real Prefect workers.

Fast: the deployments of ``flows/deploy.py`` are built with the cron schedule, the work pool
and the repository as their code source (nothing is sent to a server).

Slow (``test_two_workers_shard_rollout_and_merge``): a real ``prefect server start``
subprocess (private PREFECT_HOME, sqlite), the process work pool and the deployments created
by ``flows/deploy.py``, and two ``prefect worker start --pool P --limit 1`` subprocesses. The
parent flow ``genprm-sharded-stage`` runs ``rollout`` of a tiny temp DVC repository (a weak
world policy on the ``hf`` backend, 8 problems in 4 shards) as 2 shard runs; the test checks
that both completed on different workers (each shard run logs its parent pid, the worker
process that started it, to the server; the two must be the two worker pids), that the merge
equals a one-process run of the stage byte for byte, and that DVC recorded the stage. Workers and server are stopped by process
group, SIGKILL after a short grace (a worker once ignored SIGTERM for 50 s).
Set ``GENPRM_LABELING_POLICY`` to a policy folder built before to skip training one (~30 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

POOL = "genprm-test-pool"
PREFECT = str(Path(sys.executable).with_name("prefect"))
ROLLOUT = {
    "engine": {"backend": "hf", "settings": {"dtype": "float32", "batch_size": 256, "num_threads": 1}},
    "n_problems": 8, "paths_per_round": 4, "max_paths": 16, "keep_correct": 2, "keep_incorrect": 2,
    "temperature": 1.0, "top_p": 1.0, "max_tokens": 64, "seed": 0, "shard_size": 2,
    # the weak 250-step policy may solve none of the 8 problems: keep one-sided problems' paths, so the
    # shards hold solutions whichever way its slips fall (the test is about sharding, not the policy)
    "one_sided": "keep",
}


# ---------------------------------------------------------------- fast: deployment objects


def test_deployments_have_cron_pool_and_repo_source(repo, load_script):
    deploy = load_script(repo / "flows" / "deploy.py")
    deps = {d.full_name: d for d in deploy.build_deployments(repo, pool="gpu-x", cron="0 3 * * *",
                                                             timezone="Europe/Paris", num_shards=4)}
    assert set(deps) == {"genprm-pipeline/nightly", "genprm-shard/shard", "genprm-sharded-stage/sharded"}
    assert {d.work_pool_name for d in deps.values()} == {"gpu-x"}
    nightly = deps["genprm-pipeline/nightly"]
    [sched] = nightly.schedules
    assert (sched.schedule.cron, sched.schedule.timezone) == ("0 3 * * *", "Europe/Paris")
    assert nightly.parameters == {"repo": str(repo), "num_shards": 4, "shard_deployment": "genprm-shard/shard"}
    assert not deps["genprm-shard/shard"].schedules and not deps["genprm-sharded-stage/sharded"].schedules
    assert deps["genprm-shard/shard"].entrypoint == "flows/sharded.py:shard"
    assert deps["genprm-sharded-stage/sharded"].parameters["deployment"] == "genprm-shard/shard"
    for d in deps.values():
        assert Path(d.storage.destination) == repo  # local folder as the code source: no git remote, no image

    split = {d.full_name: d for d in deploy.build_deployments(repo, pool="gpu-x", cron=None, pipeline_pool="cpu-y")}
    assert not split["genprm-pipeline/nightly"].schedules
    assert split["genprm-pipeline/nightly"].work_pool_name == "cpu-y"
    assert split["genprm-sharded-stage/sharded"].work_pool_name == "cpu-y"
    assert split["genprm-shard/shard"].work_pool_name == "gpu-x"


def test_shard_command_is_the_stage_command_plus_shard_args(repo, load_script):
    sharded = load_script(repo / "flows" / "sharded.py")
    cmd = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["montecarlo"]["cmd"]
    kernel_path = yaml.safe_load((repo / "params.yaml").read_text())["kernel_path"]
    argv = sharded.shard_command(repo, "montecarlo", 1, 3)
    # the stage runs under params.yaml's kernel path: DVC's ${kernel_path} is filled in as dvc repro does
    assert argv[0] == sys.executable and argv[1:-5] == cmd.replace("${kernel_path}", kernel_path).split()[1:]
    assert argv[1:5] == ["-m", "genprm.kernels", kernel_path, "--"] and argv[5] == "python"
    assert argv[-5:] == ["--shard-index", "1", "--num-shards", "3", "--no-merge"]
    with pytest.raises(ValueError, match="cannot be sharded"):
        sharded.shard_command(repo, "labels", 0, 2)
    with pytest.raises(ValueError, match="shard_index"):
        sharded.shard_command(repo, "rollout", 2, 2)
    with pytest.raises(ValueError, match="unknown stage"):
        sharded.stage_command(repo, "nope")


# ---------------------------------------------------------------- slow: server, pool, two workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the process group we started, SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on a free port; yields (api url, environment for workers)."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_API_HOST="127.0.0.1")
    log = home / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after 180 s:\n{_tail(log)}")
            time.sleep(1)
        worker_env = dict(env, PREFECT_API_URL=url, PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-worker-home")),
                          PREFECT_WORKER_QUERY_SECONDS="2", PREFECT_WORKER_PREFETCH_SECONDS="2")
        yield url, worker_env
    finally:
        _stop(proc, grace=10)


@pytest.fixture(scope="module")
def shard_repo(repo, tmp_path_factory):
    """A DVC repo with only the real ``rollout`` stage of dvc.yaml, tiny params, a weak policy."""
    from genprm.records import write_records
    from genprm.world import generate_problems

    root = tmp_path_factory.mktemp("shard-repo")
    for name in ("stages", "src", "flows"):
        shutil.copytree(repo / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"rollout": spec["stages"]["rollout"]}}, sort_keys=False))
    params = {"seed": 0, "kernel_path": "native", "rollout": ROLLOUT,  # keys dvc.yaml lists or fills in
              "sampling": {"prompt": {"system": None, "demonstrations": []}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_records(root / "data/prepared/train.jsonl", generate_problems(12, 7))
    prebuilt = os.environ.get("GENPRM_LABELING_POLICY")
    if prebuilt:
        shutil.copytree(prebuilt, root / "models/policy")
    else:
        from genprm.world.policy import PolicyConfig, bootstrap_policy

        bootstrap_policy(generate_problems(600, 1), root / "models/policy", PolicyConfig(steps=250))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, env=env)
    return root


def _one_process_rollout(sharded, root: Path, out: Path) -> Path:
    """The stage's own command, all shards in one process, into ``out`` (the reference)."""
    argv = sharded.stage_command(root, "rollout")
    for flag, value in (("--out", out / "solutions.jsonl"), ("--shard-dir", out / "shards"),
                        ("--metrics", out / "rollout.json")):
        argv[argv.index(flag) + 1] = str(value)
    subprocess.run(argv, cwd=root, check=True, capture_output=True, text=True)
    return out / "solutions.jsonl"


def _logged(client, run_id, pattern: str) -> list[str]:
    """First groups of ``pattern`` in the flow run's log messages, as stored by the server."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [m.group(1) for lg in logs if (m := re.search(pattern, lg.message))]


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(600)
def test_two_workers_shard_rollout_and_merge(prefect_server, shard_repo, tmp_path, monkeypatch, load_script):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    url, worker_env = prefect_server
    root = shard_repo
    t0 = time.perf_counter()
    reference = _one_process_rollout(load_script(root / "flows" / "sharded.py"), root, tmp_path / "reference")
    assert reference.read_text().strip(), "the reference run kept no solutions: the test would prove nothing"
    t_ref = time.perf_counter() - t0

    deploy = load_script(root / "flows" / "deploy.py")
    pipeline = load_script(root / "flows" / "pipeline.py")
    sharded = pipeline.sharded
    workers: list[subprocess.Popen] = []
    names = ["shard-worker-a", "shard-worker-b"]
    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: worker_env["PREFECT_HOME"]}):
        ids = deploy.deploy(root, pool=POOL, cron="0 3 1 1 *")  # a real cron that will not fire during the test
        with get_client(sync_client=True) as client:
            pool = client.read_work_pool(POOL)
            nightly = client.read_deployment_by_name("genprm-pipeline/nightly")
        assert pool.type == "process" and set(ids) >= {"genprm-shard/shard", "genprm-pipeline/nightly"}
        assert nightly.work_pool_name == POOL and [s.schedule.cron for s in nightly.schedules] == ["0 3 1 1 *"]
        try:
            for name in names:
                with open(tmp_path / f"{name}.log", "w") as log:
                    workers.append(subprocess.Popen(
                        [PREFECT, "worker", "start", "--pool", POOL, "--limit", "1", "--name", name],
                        cwd=tmp_path, env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    ))
            with get_client(sync_client=True) as client:
                deadline = time.monotonic() + 90
                while {w.name for w in client.read_workers_for_work_pool(POOL)} < set(names):
                    dead = [n for n, w in zip(names, workers, strict=True) if w.poll() is not None]
                    assert not dead, f"workers exited: {dead}\n" + _tail(tmp_path / f"{dead[0]}.log")
                    assert time.monotonic() < deadline, "workers did not register with the server in 90 s"
                    time.sleep(1)
            t1 = time.perf_counter()
            monkeypatch.setenv("GENPRM_MLFLOW_PARENT_RUN_ID", "parent-run-of-test")  # not in the workers' env
            result = sharded.sharded_stage(stage="rollout", num_shards=2, repo=str(root), poll_s=1.0, timeout_s=400)
            t_sharded = time.perf_counter() - t1

            # both shard runs completed, each on its own worker
            runs = result["shard_runs"]
            assert [r["state"] for r in runs] == ["COMPLETED", "COMPLETED"], runs
            with get_client(sync_client=True) as client:
                # the parent pid each shard run logged is the worker process that started it
                ran_by = [_logged(client, r["id"], r"\(pid \d+, parent pid (\d+)\)") for r in runs]
                parents = [_logged(client, r["id"], r"MLflow parent run (\S+)") for r in runs]
                infra = [client.read_flow_run(r["id"]).infrastructure_pid for r in runs]
            assert sorted(int(p) for pids in ran_by for p in pids) == sorted(w.pid for w in workers), ran_by
            assert parents == [["parent-run-of-test"], ["parent-run-of-test"]]  # forwarded as a job variable
            assert infra[0] and infra[1] and infra[0] != infra[1]

            # the pipeline flow with shards: the stage is now up to date, so no new shard runs
            again = pipeline.pipeline(repo=str(root), stages=["rollout"], track=False, num_shards=2)
            with get_client(sync_client=True) as client:
                shard_runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["genprm-shard"])))
            assert len(shard_runs) == 2
        finally:
            for w in workers:
                _stop(w)

    # the merge equals the one-process run; the merge computed nothing itself; DVC recorded the stage
    merged = root / "data/rollout/solutions.jsonl"
    assert merged.read_text() == reference.read_text()
    metrics = result["metrics"]["metrics/rollout.json"]
    assert metrics["shards"] == {"shards": 4, "selected": 4, "done_now": 0, "done_before": 4}
    assert metrics["solutions"] == len(reference.read_text().splitlines())
    assert sorted(p.name for p in (root / "work/rollout").glob("rollout-0*.jsonl")) == [
        f"rollout-0000{i}.jsonl" for i in range(4)]
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["rollout"]
    assert {o["path"] for o in lock["outs"]} == {"data/rollout", "metrics/rollout.json"}
    templated = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["rollout"]["cmd"]
    assert lock["cmd"] == templated.replace("${kernel_path}", "native")  # dvc.lock holds the filled-in command
    assert sharded.stage_up_to_date(root, "rollout")
    # the pipeline's summary adds the untracked timings file; the metrics are the sharded run's
    assert {k: v for k, v in again["rollout"].items() if not k.startswith("timings/")} == result["metrics"]
    print(json.dumps({"reference_s": round(t_ref, 1), "sharded_s": round(t_sharded, 1)}))
