"""The premise of configs/real-world.yaml, on every commit: SmolLM2-135M-Instruct as shipped, shown
the profile's worked examples, solves the world's problems stated in words often enough to give both
correct and incorrect paths, in steps the exact checker reads; without the examples it does not."""

from __future__ import annotations

import pytest

from genprm.config import PolicyPrompt
from genprm.engine import create_generator
from genprm.params import load_params
from genprm.sampling import sample_solutions
from genprm.world.checker import check_solution
from genprm.world.problems import generate_problems

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def profile(repo):
    return load_params(repo / "configs" / "real-world.yaml")


@pytest.fixture(scope="module")
def policy(profile, smollm2):
    settings = {**profile.rollout.engine.settings, "model": str(smollm2)}
    gen = create_generator(profile.rollout.engine.backend, **settings)
    yield gen
    gen.close()


def _sample(policy, profile, prompt: PolicyPrompt):
    problems = generate_problems(16, 99, profile.world)
    s = profile.sampling
    sols = sample_solutions(policy, problems, n=4, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                            seed=0, prompt=prompt)
    checks = [check_solution(x.problem, x.steps) for x in sols]
    return sols, checks


def test_worked_examples_make_smollm2_a_usable_world_policy(policy, profile):
    assert profile.world.statement == "words" and len(profile.sampling.prompt.demonstrations) == 3
    sols, checks = _sample(policy, profile, profile.sampling.prompt)
    sound = sum(c.first_error < 0 for c in checks)
    readable = sum(c.step_errors[0] != "format" for c in checks)
    assert 0.05 * len(sols) <= sound <= 0.8 * len(sols), f"{sound} of {len(sols)} solutions without an error"
    assert readable >= 0.6 * len(sols), f"only {readable} of {len(sols)} first steps read as 'a op b = c'"
    assert {c.first_error_kind for c in checks} - {None, "format"}, "its errors must include real step errors"
    assert all(x.correct for x, c in zip(sols, checks) if c.first_error < 0)  # grading agrees with the checker

    bare, bare_checks = _sample(policy, profile, PolicyPrompt())
    assert sum(c.first_error < 0 for c in bare_checks) < sound
    assert sum(c.step_errors[0] != "format" for c in bare_checks) < readable
