"""Fixtures for the serving tests: a private MLflow store, the world-teacher verifier model, cases.

* ``mlflow_store``: ``MLFLOW_TRACKING_URI`` pointed at a sqlite file in a temporary folder (artifacts
  beside it) for the whole session; the previous environment and mlflow's tracking URI (set or unset) come back after.
* ``world_model``: the GenPRM verifier with the ``world-teacher`` backend (no model files, exact
  verdicts through code run in the real sandbox), logged, registered as ``genprm`` and aliased
  ``champion``; ``loaded_model``: it loaded once with ``mlflow.pyfunc.load_model`` (one engine
  and one sandbox for the module), closed at the end.
* ``world_cases``: ``(problem, steps, first_error, kind)`` with the first error from the world's
  exact checker: correct solutions, arithmetic slips and copy slips, generated and hand-made.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

REGISTERED_NAME = "genprm"


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = tracking_utils._tracking_uri  # None unless someone set one: restore exactly that
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        try:
            yield {"uri": uri, "artifacts": str(root / "artifacts"), "root": str(root)}
        finally:
            mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def world_model(mlflow_store: dict[str, str]):
    from genprm.serving import log_verifier_model

    return log_verifier_model(
        "genprm",
        "world-teacher",
        {},
        options={"n_paths": 2, "seed": 0},
        limits={"max_records": 16, "max_steps": 6, "max_step_chars": 200, "max_problem_chars": 200},
        sandbox={"timeout_s": 5.0},
        registered_model_name=REGISTERED_NAME,
        alias="champion",
        artifact_location=mlflow_store["artifacts"],
    )


@pytest.fixture(scope="module")
def loaded_model(world_model):
    import mlflow

    model = mlflow.pyfunc.load_model(world_model.model_uri)
    yield model
    model.unwrap_python_model().close()


@pytest.fixture(scope="session")
def world_cases() -> list[tuple[str, list[str], int, str]]:
    from genprm.world.checker import check_solution
    from genprm.world.policy import corrupt_steps
    from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps

    rng = random.Random(3)
    cases = [
        ("Compute (3 + 4) * 2.", ["3 + 4 = 7", "7 * 2 = 14. The answer is 14."], "correct"),
        ("Compute (3 + 4) * 2.", ["3 + 4 = 8", "8 * 2 = 16. The answer is 16."], "arithmetic"),
        ("Compute (3 + 4) * 2 - 5.", ["3 + 4 = 7", "7 * 3 = 21", "21 - 5 = 16. The answer is 16."], "copy"),
        ("Compute 9 - 2 + 6.", ["9 - 2 = 7", "7 + 6 = 12. The answer is 12."], "arithmetic"),
    ]
    problems = generate_problems(9, 5, WorldConfig(min_ops=2, max_ops=4, max_value=30, max_multiplicand=9))
    for i, p in enumerate(problems):
        chain = parse_problem(p.problem)
        kind = ("correct", "arithmetic", "copy")[i % 3]
        steps = reference_steps(chain) if kind == "correct" else corrupt_steps(chain, rng, kind)
        cases.append((p.problem, steps, kind))
    out = []
    for problem, steps, kind in cases:
        truth = check_solution(problem, steps)
        assert (truth.first_error == -1) == (kind == "correct"), (problem, steps, truth)
        out.append((problem, steps, truth.first_error, kind))
    return out
