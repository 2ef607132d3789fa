"""Rollouts with a real (tiny, weak) world policy on the hf backend."""

from __future__ import annotations

import pytest

from genprm.labeling.rollout import run_rollouts

PPR, MAX = 4, 24


@pytest.fixture(scope="module")
def rollout(policy_gen, world_problems):
    return run_rollouts(policy_gen, world_problems, paths_per_round=PPR, max_paths=MAX, keep_correct=2,
                        keep_incorrect=2, max_tokens=64, seed=3)


@pytest.mark.slow
def test_rounds_stop_once_both_outcomes_exist(rollout, world_problems) -> None:
    for p in world_problems:
        seen = rollout.outcomes[p.id]
        both_at = next((r for r in range(MAX // PPR) if {True, False} <= set(seen[: (r + 1) * PPR])), None)
        if both_at is None:
            assert len(seen) == MAX, p.id
        else:
            assert len(seen) == (both_at + 1) * PPR, p.id
    assert rollout.stats["engine_calls"] == rollout.stats["rounds"] <= MAX // PPR
    assert rollout.stats["completions"] == sum(len(v) for v in rollout.outcomes.values())


@pytest.mark.slow
def test_dropped_problems_are_counted(rollout, world_problems) -> None:
    never_both = [p.id for p in world_problems if not {True, False} <= set(rollout.outcomes[p.id])]
    assert rollout.dropped == never_both
    assert rollout.stats["dropped_problems"] == len(never_both) > 0
    assert rollout.stats["kept_problems"] == len(world_problems) - len(never_both) > 0
    assert not {s.problem_id for s in rollout.solutions} & set(never_both)


@pytest.mark.slow
def test_kept_paths_distinct_and_mc_first(rollout) -> None:
    by_problem: dict[str, list] = {}
    for s in rollout.solutions:
        by_problem.setdefault(s.problem_id, []).append(s)
    for pid, sols in by_problem.items():
        seen = rollout.outcomes[pid]
        assert 1 <= sum(s.correct for s in sols) <= 2 and 1 <= sum(not s.correct for s in sols) <= 2
        assert len({tuple(s.steps) for s in sols}) == len(sols)
        for s in sols:
            assert s.metadata["mc_first"] == pytest.approx(sum(seen) / len(seen))
            assert s.metadata["paths_sampled"] == len(seen)
            assert seen[int(s.id.rsplit("/", 1)[1])] == s.correct
            assert s.steps and s.correct == (s.final_answer is not None and s.correct)


@pytest.mark.slow
def test_rollouts_deterministic(policy_gen, world_problems, rollout) -> None:
    again = run_rollouts(policy_gen, world_problems, paths_per_round=PPR, max_paths=MAX, keep_correct=2,
                         keep_incorrect=2, max_tokens=64, seed=3)
    assert [s.to_dict() for s in again.solutions] == [s.to_dict() for s in rollout.solutions]
