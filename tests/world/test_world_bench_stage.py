"""The ``world_bench`` stage end to end: same params, byte-identical benchmark (DVC caching relies on it).

It needs a policy that sometimes solves a problem without a wrong step, so it trains its own small
one on the embedded default's easy problems (one-digit tables, values up to 20).
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from genprm.records import write_records
from genprm.world import generate_problems
from genprm.world.problems import WorldConfig

pytestmark = pytest.mark.slow

EASY = WorldConfig(min_ops=2, max_ops=2, max_value=20, max_multiplicand=9)


@pytest.fixture(scope="module")
def easy_policy(tmp_path_factory) -> str:
    from genprm.world.policy import PolicyConfig, bootstrap_policy

    out = tmp_path_factory.mktemp("easy_policy")
    bootstrap_policy(generate_problems(400, 1, EASY), out, PolicyConfig(steps=300, batch_size=32, error_share=0.3))
    return str(out)


def test_same_params_same_bytes(repo, easy_policy, tmp_path, load_script):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["world_bench"] = {"samples_per_problem": 4, "size": 6, "seed": 0,
                             "engine": {"backend": "hf", "settings": {"dtype": "float32", "num_threads": 1}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    problems = tmp_path / "problems.jsonl"
    write_records(problems, generate_problems(40, 2, EASY))
    stage = load_script(repo / "stages" / "world_bench.py")
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run / "world.json"
        assert stage.main(["--params", str(tmp_path / "params.yaml"), "--problems", str(problems),
                           "--policy", easy_policy, "--out", str(out), "--metrics", str(tmp_path / run / "m.json")]) == 0
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    rows = json.loads((tmp_path / "a" / "world.json").read_text())
    assert len(rows) == 6 and sum(r["label"] == -1 for r in rows) == 3
    assert set(rows[0]) == {"id", "generator", "problem", "steps", "final_answer_correct", "label", "error_kind"}
    assert all((r["error_kind"] is None) == (r["label"] == -1) for r in rows)
