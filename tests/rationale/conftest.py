"""Fixtures for the rationale tests: labelled world solutions, a real sandbox, the world teacher.

Solutions are built by hand from world problems: the reference solution (RPE labels all 1) and
copies with one step's result off by one and carried forward (labels 1 before that step, 0 from it on).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from genprm.records import Solution, StepValues  # noqa: E402
from genprm.world.problems import apply_op, generate_problems, parse_problem, reference_steps  # noqa: E402


def corrupt(chain, j: int) -> list[str]:
    """A solution of ``chain`` whose step ``j`` result is off by one, carried forward like a policy does."""
    steps, acc = [], chain.operands[0]
    for i, (op, b) in enumerate(zip(chain.ops, chain.operands[1:])):
        res = apply_op(acc, op, b) + (1 if i == j else 0)
        steps.append(f"{acc} {op} {b} = {res}")
        acc = res
    steps[-1] += f". The answer is {acc}."
    return steps


def labelled_solutions(n_problems: int, seed: int = 11, generator: str = "policy") -> list[tuple[Solution, StepValues]]:
    """For each problem: the reference solution and one corrupted at step ``i % n_steps``."""
    out = []
    for i, p in enumerate(generate_problems(n_problems, seed)):
        chain = parse_problem(p.problem)
        steps = reference_steps(chain)
        j = i % len(steps)
        for kind, sol_steps, labels in (
            ("ref", steps, [1] * len(steps)),
            ("bad", corrupt(chain, j), [1] * j + [0] * (len(steps) - j)),
        ):
            sid = f"{p.id}/{kind}"
            sol = Solution(id=sid, problem_id=p.id, problem=p.problem, steps=sol_steps, generator=generator,
                           correct=kind == "ref")
            mc = [float(v) for v in labels]
            values = StepValues(solution_id=sid, problem_id=p.id, mc_first=0.5, mc=mc, k=[8] * len(mc),
                                labels={"rpe": labels})
            out.append((sol, values))
    return out


@pytest.fixture(scope="module")
def sandbox() -> Iterator[object]:
    from genprm.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(timeout_s=3.0, memory_mb=512, pool_size=4)) as sb:
        yield sb


@pytest.fixture(scope="module")
def teacher():
    from genprm.engine import create_generator

    return create_generator("world-teacher", noise=0.0)


@pytest.fixture(scope="module")
def labelled() -> list[tuple[Solution, StepValues]]:
    return labelled_solutions(6)
