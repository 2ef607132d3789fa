"""Degenerate outcomes: one-sided problems (``rollout.one_sided``), empty outputs and failing gates.

A stage with nothing to write, or whose gate fails, writes its metrics (with the report) and
then fails with a message naming the cause and the knob to change; the tests run the stage
scripts as ``dvc repro`` does and the library functions under them, on the tiny world policy
(hf backend) or hand-built values.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from genprm.labeling.config import LabelsConfig, MonteCarloConfig, RolloutConfig
from genprm.labeling.labels import apply_labels
from genprm.labeling.rollout import run_rollouts
from genprm.labeling.runner import failed_gate_path, labels_stage, montecarlo_stage, rollout_stage
from genprm.quality import StageOutputError
from genprm.records import Solution, StepValues, read_records, write_records

REPO = Path(__file__).resolve().parents[2]
PPR, MAX = 4, 12


@pytest.fixture(scope="module")
def both_ways(policy_gen, world_problems):
    """The same rollouts with ``one_sided`` drop and keep."""
    common = dict(paths_per_round=PPR, max_paths=MAX, keep_correct=2, keep_incorrect=2, max_tokens=64, seed=3)
    return (run_rollouts(policy_gen, world_problems, one_sided="drop", **common),
            run_rollouts(policy_gen, world_problems, one_sided="keep", **common))


@pytest.mark.slow
def test_one_sided_problems_are_counted_by_cause(both_ways, world_problems) -> None:
    drop, _ = both_ways
    no_correct = [p.id for p in world_problems if not any(drop.outcomes[p.id])]
    no_incorrect = [p.id for p in world_problems if all(drop.outcomes[p.id])]
    assert no_correct, "the weak policy should fail some problem on every path"
    assert drop.stats["no_correct_problems"] == len(no_correct)
    assert drop.stats["no_incorrect_problems"] == len(no_incorrect)
    assert drop.stats["dropped_problems"] == len(no_correct) + len(no_incorrect) == len(drop.dropped)
    assert drop.one_sided == {**{p: "no_correct" for p in no_correct}, **{p: "no_incorrect" for p in no_incorrect}}


@pytest.mark.slow
def test_keep_keeps_one_sided_problems_marked_and_samples_the_same(both_ways) -> None:
    drop, keep = both_ways
    assert keep.outcomes == drop.outcomes and keep.dropped == []
    assert keep.stats["kept_problems"] == keep.stats["problems"]
    assert keep.stats["one_sided_problems"] == drop.stats["dropped_problems"]
    one_sided = [s for s in keep.solutions if s.problem_id in drop.one_sided]
    assert one_sided
    for s in one_sided:
        cause = drop.one_sided[s.problem_id]
        assert s.metadata["one_sided"] == cause
        assert s.metadata["mc_first"] == (0.0 if cause == "no_correct" else 1.0)
        assert s.correct is (cause == "no_incorrect")
    per_problem = {}
    for s in one_sided:
        per_problem[s.problem_id] = per_problem.get(s.problem_id, 0) + 1
    assert max(per_problem.values()) <= 2  # keep_incorrect / keep_correct still bound them
    # problems with both outcomes are kept exactly as with drop, unmarked
    both = [s.to_dict() for s in keep.solutions if s.problem_id not in drop.one_sided]
    assert both == [s.to_dict() for s in drop.solutions]
    assert all("one_sided" not in s.metadata for s in drop.solutions)


@pytest.mark.slow
def test_one_sided_chain_passes_montecarlo_and_the_labels_gate(tmp_path, policy_gen, engine_settings,
                                                              world_problems) -> None:
    problems = tmp_path / "train.jsonl"
    write_records(problems, world_problems[:6])
    rcfg = RolloutConfig.model_validate({"engine": engine_settings, "paths_per_round": PPR, "max_paths": 8,
                                         "max_tokens": 64, "seed": 3, "one_sided": "keep"})
    rm = rollout_stage(problems, rcfg, tmp_path / "solutions.jsonl", tmp_path / "r", generator=policy_gen)
    assert rm["one_sided_problems"] >= 1 and rm["no_correct_problems"] >= 1
    mcfg = MonteCarloConfig.model_validate({"engine": engine_settings, "k_thresholds": [[0.1, 4], [1.0, 2]],
                                            "max_tokens": 64, "seed": 2})
    montecarlo_stage(problems, tmp_path / "solutions.jsonl", mcfg, tmp_path / "values.jsonl", tmp_path / "m",
                     generator=policy_gen)
    values = read_records(tmp_path / "values.jsonl", StepValues)
    assert any(v.mc_first == 0.0 for v in values)
    lm = labels_stage(tmp_path / "values.jsonl", tmp_path / "solutions.jsonl",
                      LabelsConfig(gate={"min_positive_share": 0.0, "max_positive_share": 1.0}), tmp_path / "l.jsonl")
    assert lm["gate"]["failed"] == 0  # problem_has_both accepts the marked one-sided problems
    for v in read_records(tmp_path / "l.jsonl", StepValues):
        if v.mc_first == 0.0:  # RPE on MC(s_1) = 0: 1 where the step still leads to a correct answer
            assert v.labels["rpe"][0] == int(v.mc[0] > 0)


@pytest.mark.slow
def test_rollout_stage_that_keeps_nothing_writes_metrics_then_fails(tmp_path, engine_settings, world_problems,
                                                                    load_script, caplog) -> None:
    write_records(tmp_path / "train.jsonl", world_problems[:3])
    section = {"engine": engine_settings, "paths_per_round": 2, "max_paths": 2, "max_tokens": 1, "seed": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"rollout": section}))
    out = tmp_path / "solutions.jsonl"
    out.write_text("stale\n")  # from an earlier run: must not pass for this run's output
    args = ["--params", str(tmp_path / "params.yaml"), "--problems", str(tmp_path / "train.jsonl"), "--out", str(out),
            "--shard-dir", str(tmp_path / "shards"), "--metrics", str(tmp_path / "m.json")]
    with caplog.at_level(logging.ERROR):
        assert load_script(REPO / "stages" / "rollout.py").main(args) == 1
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["solutions"] == 0 and metrics["no_correct_problems"] == 3 and metrics["dropped_problems"] == 3
    assert not out.exists()
    message = caplog.text
    for knob in ("rollout.one_sided: keep", "rollout.max_paths", "rollout.n_problems", "3 problem(s) never got a "
                 "correct path"):
        assert knob in message, message
    # the knob it names works: the same run with one_sided keep succeeds
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"rollout": {**section, "one_sided": "keep"}}))
    assert load_script(REPO / "stages" / "rollout.py").main(args) == 0
    kept = read_records(out, Solution)
    assert len(kept) == 3 and all(s.metadata["one_sided"] == "no_correct" for s in kept)


def test_montecarlo_without_solutions_fails_naming_the_rollout(tmp_path) -> None:
    write_records(tmp_path / "train.jsonl", [])
    write_records(tmp_path / "solutions.jsonl", [])
    (tmp_path / "values.jsonl").write_text("stale\n")
    cfg = MonteCarloConfig.model_validate({"engine": {"backend": "hf", "settings": {"model": str(tmp_path / "none")}}})
    with pytest.raises(StageOutputError, match=r"no step values.*rollout\.one_sided: keep") as info:
        montecarlo_stage(tmp_path / "train.jsonl", tmp_path / "solutions.jsonl", cfg, tmp_path / "values.jsonl",
                         tmp_path / "shards")
    assert info.value.metrics["shards"]["shards"] == 0 and "stage_seconds" in info.value.metrics
    assert not (tmp_path / "values.jsonl").exists()
    assert "\n" not in str(info.value)  # one paragraph


def test_labels_stage_without_values_fails_and_writes_metrics(tmp_path, load_script, caplog) -> None:
    write_records(tmp_path / "values.jsonl", [])
    write_records(tmp_path / "solutions.jsonl", [])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"labels": {}}))
    args = ["--params", str(tmp_path / "params.yaml"), "--values", str(tmp_path / "values.jsonl"), "--solutions",
            str(tmp_path / "solutions.jsonl"), "--out", str(tmp_path / "labels" / "values.jsonl"),
            "--metrics", str(tmp_path / "m.json")]
    with caplog.at_level(logging.ERROR):
        assert load_script(REPO / "stages" / "labels.py").main(args) == 1
    assert json.loads((tmp_path / "m.json").read_text())["solutions"] == 0
    assert "no step values to label" in caplog.text and "rollout.one_sided: keep" in caplog.text
    assert not (tmp_path / "labels" / "values.jsonl").exists()


def _hand_built(tmp: Path, one_sided_marked: bool) -> None:
    """Two problems with both outcomes and one with only incorrect solutions (mc_first 0)."""
    sols, vals = [], []
    for p in range(3):
        for j, ok in enumerate((True, False) if p < 2 else (False, False)):
            sid = f"p{p}/{j}"
            meta = {"one_sided": "no_correct"} if p == 2 and one_sided_marked else {}
            sols.append(Solution(id=sid, problem_id=f"p{p}", problem="q", steps=[f"{p} + {j} = {p + j}", f"s{j}", "e"],
                                 correct=ok, metadata=meta))
            mc, k = ([0.5, 0.5, 1.0], [8, 8, 0]) if ok else ([0.25, 0.0, 0.0], [8, 8, 0])
            vals.append(StepValues(solution_id=sid, problem_id=f"p{p}", mc_first=0.5 if p < 2 else 0.0, mc=mc, k=k))
    write_records(tmp / "solutions.jsonl", sols)
    write_records(tmp / "values.jsonl", vals)


def _labels_args(tmp: Path, gate: dict) -> list[str]:
    (tmp / "params.yaml").write_text(yaml.safe_dump({"labels": {"gate": gate}}))
    return ["--params", str(tmp / "params.yaml"), "--values", str(tmp / "values.jsonl"), "--solutions",
            str(tmp / "solutions.jsonl"), "--out", str(tmp / "labels" / "values.jsonl"), "--metrics", str(tmp / "m.json")]


@pytest.mark.slow
def test_labels_gate_accepts_only_marked_one_sided_problems(tmp_path, load_script) -> None:
    gate = {"min_positive_share": 0.05, "max_positive_share": 0.95}
    _hand_built(tmp_path, one_sided_marked=True)
    assert load_script(REPO / "stages" / "labels.py").main(_labels_args(tmp_path, gate)) == 0
    labelled = read_records(tmp_path / "labels" / "values.jsonl", StepValues)
    assert [v.labels["rpe"] for v in labelled if v.mc_first == 0.0] == [[1, 0, 0], [1, 0, 0]]
    _hand_built(tmp_path, one_sided_marked=False)
    assert load_script(REPO / "stages" / "labels.py").main(_labels_args(tmp_path, gate)) == 1
    failures = json.loads((tmp_path / "m.json").read_text())["gate"]["failures"]
    assert [f["column"] for f in failures] == ["problem_has_both"]
    assert {r["solution_id"] for r in failures[0]["rows"]} == {"p2/0", "p2/1"}


@pytest.mark.slow
def test_labels_gate_failure_writes_its_report_then_fails(tmp_path, load_script, caplog) -> None:
    _hand_built(tmp_path, one_sided_marked=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "values.jsonl").write_text("stale\n")
    with caplog.at_level(logging.ERROR):
        code = load_script(REPO / "stages" / "labels.py").main(
            _labels_args(tmp_path, {"min_positive_share": 0.9, "max_positive_share": 1.0}))
    assert code == 1
    metrics = json.loads((tmp_path / "m.json").read_text())
    (failure,) = metrics["gate"]["failures"]
    assert failure["expectation"] == "expect_column_mean_to_be_between" and failure["column"] == "label_rpe"
    assert failure["observed"] == pytest.approx(metrics["gate"]["positive_share"], abs=1e-4) == 8 / 18
    assert metrics["gate"]["failed"] == 1
    # the labelled values are kept beside, under a name no later stage reads; the output is not written
    side = failed_gate_path(tmp_path / "labels" / "values.jsonl")
    assert side.name == "values.gate-failed.jsonl" and metrics["gate_failed_output"] == str(side)
    assert len(read_records(side, StepValues)) == 6 and not (tmp_path / "labels" / "values.jsonl").exists()
    assert "labels.gate.min_positive_share" in caplog.text and "rollout.max_paths" in caplog.text
    # a passing run removes the side file again
    assert load_script(REPO / "stages" / "labels.py").main(
        _labels_args(tmp_path, {"min_positive_share": 0.05, "max_positive_share": 0.95})) == 0
    assert not side.exists() and (tmp_path / "labels" / "values.jsonl").exists()


def test_labels_never_divide_by_a_zero_first_value() -> None:
    v = StepValues(solution_id="p/0", problem_id="p", mc_first=0.0, mc=[0.25, 0.0, 0.0], k=[128, 128, 0])
    dead = StepValues(solution_id="p/1", problem_id="p", mc_first=0.0, mc=[0.0, 0.0, 0.0], k=[128, 0, 0])
    rose, stayed = apply_labels([v, dead], epsilon=0.8, difference_threshold=-0.3)
    assert rose.labels == {"hard": [1, 0, 0], "rpe": [1, 0, 0], "difference": [1, 1, 0]}  # 0 - 0.25 >= -0.3
    assert stayed.labels == {"hard": [0, 0, 0], "rpe": [0, 0, 0], "difference": [0, 0, 0]}
    (sure,) = apply_labels([v.model_copy(update={"mc_first": 1.0, "mc": [1.0, 0.5, 0.0]})])
    assert sure.labels["rpe"] == [1, 0, 0] and sure.labels["difference"] == [1, 0, 0]
