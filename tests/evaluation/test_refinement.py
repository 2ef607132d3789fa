"""Critic refinement on the world: a tiny real policy (hf) revises, the rule teacher is the critic.

The world teacher verifies with real executed code and flags exactly the first wrong step, so
the critic arm must keep every accepted solution and every accepted prefix, and can only gain.
"""

from __future__ import annotations

import pytest

from genprm.evaluation.refinement import CRITIC_PROMPT, RefinementOptions, analysis_of, refine
from genprm.sampling import sample_solutions
from genprm.sandbox import Sandbox, SandboxConfig
from genprm.verifier import GenPRMVerifier, VerifierOptions
from genprm.world import generate_problems
from genprm.world.checker import check_solution
from genprm.world.teacher import WorldTeacher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(world_policy):
    from genprm.engine import create_generator

    policy = create_generator("hf", model=world_policy, dtype="float32", batch_size=256, num_threads=1)
    problems = generate_problems(24, 5)
    first = sample_solutions(policy, problems, n=1, temperature=1.0, max_tokens=96, seed=3)
    with Sandbox(SandboxConfig(timeout_s=2.0, pool_size=2)) as sandbox:
        yield policy, sandbox, problems, first
    policy.close()


def _run(setup, recording, mode: str, turns: int = 2):
    policy, sandbox, problems, first = setup
    recorded = recording(policy)
    verifier = GenPRMVerifier(WorldTeacher(), sandbox, VerifierOptions(n_paths=1))
    report = refine(recorded, verifier, problems, first, RefinementOptions(turns=turns, mode=mode, max_tokens=96, seed=1))
    return report, recorded.requests


def test_resample_keeps_accepted_work_and_only_gains(setup, recording):
    _, _, problems, first = setup
    report, _ = _run(setup, recording, "resample")
    acc = report.accuracy["critic"]
    assert len(acc) == 3 and len(report.accuracy["self"]) == 3
    assert acc[0] == report.accuracy["self"][0] == pytest.approx(100 * sum(bool(s.correct) for s in first) / len(first))
    assert acc[0] < 100, "the tiny policy must make mistakes for this test to mean something"
    # the exact critic never touches a solution whose every step is right, so those only accumulate
    # (answer accuracy may dip: a right answer reached through a wrong step gets revised)
    sound = [sum(check_solution(s.problem, s.steps).first_error < 0 for s in sols) for sols in (first, report.final["critic"])]
    assert sound[1] >= sound[0]
    assert report.revised["self"] == [len(problems)] * 2
    assert report.revised["critic"][0] == sum(check_solution(s.problem, s.steps).first_error >= 0 for s in first)
    for orig, final in zip(first, report.final["critic"]):
        first_error = check_solution(orig.problem, orig.steps).first_error
        if first_error < 0:
            assert final is orig  # accepted: never touched
        else:
            assert final.steps[:first_error] == orig.steps[:first_error]  # the accepted prefix is kept
            assert final.metadata["revised_from"].startswith(orig.id)


def test_deterministic(setup, recording):
    a, _ = _run(setup, recording, "resample", turns=1)
    b, _ = _run(setup, recording, "resample", turns=1)
    assert a.accuracy == b.accuracy
    assert [s.steps for s in a.final["critic"]] == [s.steps for s in b.final["critic"]]
    assert [s.steps for s in a.final["self"]] == [s.steps for s in b.final["self"]]


def test_feedback_mode_shows_the_critique(setup, recording):
    _, _, _, first = setup
    report, requests = _run(setup, recording, "feedback", turns=1)
    critic = [r for r in requests if r.messages and len(r.messages) == 3 and "reviewer" in r.messages[2]["content"]]
    assert len(critic) == report.revised["critic"][0] > 0
    r = critic[0]
    assert r.messages[1]["role"] == "assistant" and r.messages[1]["content"].startswith("Step 1: ")
    assert r.assistant_prefix == "Step 1:"
    assert "Paragraph" in r.messages[2]["content"] and "claims" in r.messages[2]["content"]
    assert "Let's analyze" not in r.messages[2]["content"]  # the forced opening is not part of the critique
    selfs = [r for r in requests if r.messages and len(r.messages) == 3 and "reviewer" not in r.messages[2]["content"]]
    assert len(selfs) == len(first)


def test_analysis_and_bad_input(setup):
    text = "<analyze>\nLet's analyze the Paragraph 2 step by step: Paragraph 2 claims 3 + 4 = 8.\n</analyze>\n<verify>..."
    assert analysis_of(text) == "Paragraph 2 claims 3 + 4 = 8."
    assert CRITIC_PROMPT.format(k=2, analysis="x").startswith("A reviewer")
    policy, sandbox, problems, first = setup
    verifier = GenPRMVerifier(WorldTeacher(), sandbox, VerifierOptions(n_paths=1))
    with pytest.raises(ValueError, match="2 problems but 1 solutions"):
        refine(policy, verifier, problems[:2], first[:1])
    with pytest.raises(ValueError, match="is for problem"):
        refine(policy, verifier, problems[:1], first[1:2])
    with pytest.raises(ValueError, match="turns"):
        RefinementOptions(turns=0)
