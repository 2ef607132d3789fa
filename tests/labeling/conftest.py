"""Fixtures for the labeling tests: an ``hf`` generator on the tiny world policy.

``world_policy`` (tests/conftest.py) trains :func:`genprm.world.policy.bootstrap_policy` for a few hundred
optimizer steps (about 20-30 s on 2 cores); set ``GENPRM_LABELING_POLICY`` to a folder built
before to skip that. The policy is weak (a few % accuracy), which is what these tests need:
problems with both outcomes, and problems that never get a correct path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GEN_SETTINGS = {"dtype": "float32", "batch_size": 256, "num_threads": 1}


@pytest.fixture(scope="session")
def policy_gen(world_policy: str) -> Iterator[object]:
    from genprm.engine import create_generator

    gen = create_generator("hf", model=world_policy, **GEN_SETTINGS)
    yield gen
    gen.close()


@pytest.fixture(scope="session")
def engine_settings(world_policy: str) -> dict:
    """The ``engine`` config section matching ``policy_gen`` (the model folder is set here too)."""
    return {"backend": "hf", "settings": {"model": world_policy, **GEN_SETTINGS}}


@pytest.fixture(scope="session")
def world_problems():
    from genprm.world import generate_problems

    return generate_problems(12, 7)
