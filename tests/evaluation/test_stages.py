"""The evaluation stages end to end, with the world's rule teacher as the GenPRM (exact, real sandbox).

The teacher flags exactly the first wrong step (it executes the code it writes), so the
ProcessBench stage must score 100 F1 on hand-made samples, and Best-of-N with PRM-Min must
reach the best any selection can (pass@k) whenever a sound solution is among the candidates.
"""

from __future__ import annotations

import json

import pytest
import yaml

from genprm.records import Solution, write_records
from genprm.world import generate_problems
from genprm.world.benchmark import label_solutions
from genprm.world.problems import WorldConfig, parse_problem, reference_steps

pytestmark = pytest.mark.slow

TEACHER = {"backend": "world-teacher", "settings": {}}
VERIFIER = {"engine": TEACHER, "n_paths": 2, "max_tokens": 256, "max_code_rounds": 2}
EASY = WorldConfig(min_ops=2, max_ops=2, max_value=20, max_multiplicand=9)


def _params(repo, tmp_path, **sections) -> str:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(sections)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


def _bench_file(tmp_path) -> tuple[str, list[int]]:
    sols = []
    for i, p in enumerate(generate_problems(8, 3)):
        steps = reference_steps(parse_problem(p.problem))
        if i % 2:  # an arithmetic slip at step i % len(steps), carried forward
            j = i % len(steps)
            head, _, value = steps[j].partition(" = ")
            wrong = int(value.split(".")[0]) + 1
            steps = steps[:j] + [f"{head} = {wrong}" + (". The answer is %d." % wrong if "answer" in value else "")]
        sols.append(Solution(id=f"s{i}", problem_id=p.id, problem=p.problem, steps=steps, generator="hand"))
    samples = label_solutions(sols, split="world")
    path = tmp_path / "world.json"
    path.write_text(json.dumps([s.model_dump(exclude={"split"}) for s in samples]))
    return str(path), [s.label for s in samples]


def test_processbench_stage(repo, tmp_path, load_script):
    data, labels = _bench_file(tmp_path)
    assert -1 in labels and any(lab >= 0 for lab in labels)
    params = _params(repo, tmp_path, evaluate_processbench={"data": data, "verifier": VERIFIER})
    out = tmp_path / "out"
    assert load_script(repo / "stages" / "evaluate_processbench.py").main([
        "--params", params, "--model", "unused", "--predictions", str(out / "pred.jsonl"),
        "--metrics", str(out / "pb.json"), "--plot", str(out / "f1.png"), "--rewards-plot", str(out / "r.png"),
    ]) == 0
    metrics = json.loads((out / "pb.json").read_text())
    assert metrics["pass@1"]["average_f1"] == metrics["maj@2"]["average_f1"] == 100.0
    assert metrics["maj@2"]["splits"]["world"]["n"] == len(labels)
    preds = [json.loads(line) for line in (out / "pred.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in preds] == labels
    # the world teacher judges every turn itself: nothing forced, and the metrics say so
    turns = sum(len(p["step_rewards"]) for p in preds)
    assert metrics["pass@1"]["forced_judgements"] == {"turns": turns, "forced": 0, "share": 0.0, "by_reason": {}}
    assert metrics["maj@2"]["forced_judgements"]["turns"] == 2 * turns
    assert all(p["step_forced"] == [0.0] * len(p["step_rewards"]) for p in preds)
    assert (out / "f1.png").stat().st_size > 1000 and (out / "r.png").stat().st_size > 1000


def test_best_of_n_and_critic_stages(repo, tmp_path, world_policy, load_script):
    problems = tmp_path / "problems.jsonl"
    write_records(problems, generate_problems(10, 4, EASY))
    policy = {"backend": "hf", "settings": {"dtype": "float32", "num_threads": 1}}
    params = _params(
        repo, tmp_path,
        best_of_n={"policy_engine": policy, "n_max": 4, "draws": 5, "vote_score": "min", "verifier": {**VERIFIER, "n_paths": 1}},
        critic={"policy_engine": policy, "turns": 2, "mode": "resample", "verifier": {**VERIFIER, "n_paths": 1}},
    )
    out = tmp_path / "out"
    assert load_script(repo / "stages" / "best_of_n.py").main([
        "--params", params, "--model", "unused", "--policy", world_policy, "--problems", str(problems),
        "--out", str(out / "bon.jsonl"), "--metrics", str(out / "bon.json"), "--plot", str(out / "bon.png"),
    ]) == 0
    bon = json.loads((out / "bon.json").read_text())
    assert bon["solutions"] == 40 and set(bon["curves"]["prm_min"]) == {"1", "2", "4"}
    assert bon["curves"]["prm_min"]["1"] == pytest.approx(bon["curves"]["majority"]["1"])  # N=1: no choice
    for n in ("1", "2", "4"):
        assert bon["curves"]["prm_min"][n] <= bon["curves"]["pass_at_k"][n] + 1e-9
    scored = [json.loads(line) for line in (out / "bon.jsonl").read_text().splitlines()]
    assert all(len(s["metadata"]["step_rewards"]) == len(s["steps"]) for s in scored)
    assert bon["forced_judgements"]["forced"] == 0 and bon["forced_judgements"]["turns"] == sum(
        len(s["metadata"]["step_forced"]) for s in scored)

    assert load_script(repo / "stages" / "critic.py").main([
        "--params", params, "--model", "unused", "--policy", world_policy, "--problems", str(problems),
        "--out", str(out / "critic.jsonl"), "--metrics", str(out / "critic.json"), "--plot", str(out / "critic.png"),
    ]) == 0
    critic = json.loads((out / "critic.json").read_text())
    assert len(critic["accuracy"]["critic"]) == len(critic["accuracy"]["self"]) == 3
    assert critic["accuracy"]["critic"][0] == critic["accuracy"]["self"][0]
    assert critic["revised"]["self"] == [10, 10]
    assert critic["forced_judgements"]["forced"] == 0 and critic["forced_judgements"]["turns"] > 0
    assert (out / "critic.png").stat().st_size > 1000
