"""Fixtures: world solutions with known first errors, the real sandbox, a tiny GenPRM on hf.

``tiny_genprm`` is built once per session (~1 min on 2 cores) by
:func:`genprm.prm.tiny.build_tiny_genprm`; set ``GENPRM_TINY_GENPRM`` to a folder built before.
"""

from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def world_solutions() -> list[tuple[str, list[str]]]:
    from genprm.world.policy import corrupt_steps
    from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps

    rng = random.Random(0)
    probs = generate_problems(10, 1, WorldConfig(max_value=30, max_multiplicand=9))
    out = []
    for i, p in enumerate(probs):
        chain = parse_problem(p.problem)
        steps = reference_steps(chain) if i % 2 == 0 else corrupt_steps(chain, rng, rng.choice(["arithmetic", "copy"]))
        out.append((p.problem, steps))
    return out


@pytest.fixture(scope="session")
def sandbox():
    from genprm.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(timeout_s=5)) as sb:
        yield sb


@pytest.fixture(scope="session")
def tiny_genprm(tmp_path_factory: pytest.TempPathFactory) -> str:
    prebuilt = os.environ.get("GENPRM_TINY_GENPRM")
    if prebuilt:
        return prebuilt
    from genprm.prm.tiny import build_tiny_genprm

    return str(build_tiny_genprm(tmp_path_factory.mktemp("tiny_genprm")))


@pytest.fixture(scope="session")
def hf_genprm(tiny_genprm: str):
    from genprm.engine import create_generator

    gen = create_generator("hf", model=tiny_genprm, dtype="float32", batch_size=64)
    yield gen
    gen.close()
