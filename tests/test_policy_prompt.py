"""The policy's prompt (``sampling.prompt``): the same system turn and worked examples before the
problem in every request that samples the policy, and part of what a resumed run checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from genprm.config import PolicyPrompt
from genprm.engine.base import Completion, GenerationRequest
from genprm.evaluation.refinement import RefinementOptions, _request
from genprm.labeling.montecarlo import completion_request
from genprm.labeling.runner import montecarlo_stage, rollout_stage
from genprm.labeling.config import MonteCarloConfig, RolloutConfig
from genprm.records import write_records, read_records, Solution
from genprm.sampling import policy_request, sample_solutions
from genprm.steps import STEP_PREFIX, format_steps
from genprm.world.problems import WorldConfig, generate_problems, parse_problem, reference_steps

PROMPT = PolicyPrompt.model_validate({
    "system": "You add and multiply.",
    "demonstrations": [
        {"problem": "Start with 6. Multiply by 2.", "steps": ["6 * 2 = 12. The answer is 12."]},
        {"problem": "Start with 7. Subtract 4. Add 9.", "steps": ["7 - 4 = 3", "3 + 9 = 12. The answer is 12."]},
    ],
})
SHOWN = [
    {"role": "system", "content": "You add and multiply."},
    {"role": "user", "content": "Start with 6. Multiply by 2."},
    {"role": "assistant", "content": "Step 1: 6 * 2 = 12. The answer is 12."},
    {"role": "user", "content": "Start with 7. Subtract 4. Add 9."},
    {"role": "assistant", "content": "Step 1: 7 - 4 = 3\nStep 2: 3 + 9 = 12. The answer is 12."},
]


class ReferencePolicy:
    """A policy that writes the world's reference solution from wherever its turn starts; records requests."""

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def generate(self, requests):
        out = []
        for r in requests:
            self.requests.append(r)
            full = format_steps(reference_steps(parse_problem(r.messages[-1]["content"])))
            text = full[len(r.assistant_prefix):] if full.startswith(r.assistant_prefix) else " 0 + 0 = 0. The answer is 0."
            out.append([Completion(text=text, token_ids=[], finish_reason="eos") for _ in range(r.n)])
        return out

    def close(self) -> None:
        pass


def test_messages_put_the_examples_before_the_problem():
    assert PROMPT.messages("Start with 1. Add 2.") == [*SHOWN, {"role": "user", "content": "Start with 1. Add 2."}]
    assert PolicyPrompt().messages("Q") == [{"role": "user", "content": "Q"}]  # the default: today's bare turn
    req = policy_request("Q", prompt=PROMPT)
    assert list(req.messages[:-1]) == SHOWN and req.assistant_prefix == STEP_PREFIX
    assert list(policy_request("Q").messages) == [{"role": "user", "content": "Q"}]
    mc = completion_request("Q", ["1 + 2 = 3", "x"], 1, n=2, temperature=0.7, top_p=1.0, max_tokens=8, seed=0, prompt=PROMPT)
    assert list(mc.messages) == [*SHOWN, {"role": "user", "content": "Q"}]
    assert mc.assistant_prefix == "Step 1: 1 + 2 = 3\nStep 2:"  # the examples never enter the assistant turn


@pytest.mark.parametrize("bad, where", [
    ({"demonstrations": [{"problem": "P", "steps": []}]}, "steps"),
    ({"demonstrations": [{"problem": "", "steps": ["a"]}]}, "problem"),
    ({"demonstrations": [{"problem": "P", "steps": ["a\nStep 2: b"]}]}, "steps"),
    ({"demonstrations": [{"problem": "P", "steps": [" a"]}]}, "steps"),
    ({"examples": []}, "examples"),
])
def test_bad_demonstrations_are_rejected(bad, where):
    with pytest.raises(ValidationError, match=where):
        PolicyPrompt.model_validate(bad)


def test_sampling_and_refinement_show_the_prompt():
    problems = generate_problems(4, 3, WorldConfig(statement="words", max_value=20))
    policy = ReferencePolicy()
    sols = sample_solutions(policy, problems, n=2, prompt=PROMPT)
    assert len(sols) == 8 and all(s.correct for s in sols)
    assert all(list(r.messages[:-1]) == SHOWN for r in policy.requests)
    broken = sols[0].model_copy(update={"steps": ["1 + 1 = 5", *sols[0].steps[1:]]})
    for mode in ("resample", "feedback"):
        req = _request(problems[0], broken, 0, "claims 5", "critic", 1, 0, RefinementOptions(mode=mode, prompt=PROMPT))
        assert list(req.messages[: len(SHOWN)]) == SHOWN and req.messages[len(SHOWN)]["content"] == problems[0].problem


def test_rollout_and_montecarlo_stages_use_it_and_resume_only_with_it(tmp_path):
    problems = generate_problems(6, 4, WorldConfig(statement="words", max_value=20))
    write_records(tmp_path / "problems.jsonl", problems)
    model = tmp_path / "model"  # a folder for the engine config (the recording policy stands in for it)
    model.mkdir()
    rcfg = RolloutConfig.model_validate({
        "engine": {"backend": "vllm", "settings": {"model": str(model)}}, "n_problems": 6,
        "paths_per_round": 2, "max_paths": 2, "one_sided": "keep", "shard_size": 3,
    })
    policy = ReferencePolicy()
    rollout_stage(tmp_path / "problems.jsonl", rcfg, tmp_path / "sols.jsonl", tmp_path / "work", generator=policy,
                  prompt=PROMPT)
    assert len(policy.requests) == 6 and all(list(r.messages[:-1]) == SHOWN for r in policy.requests)
    again = ReferencePolicy()  # same prompt: every shard is reused
    rollout_stage(tmp_path / "problems.jsonl", rcfg, tmp_path / "sols.jsonl", tmp_path / "work", generator=again,
                  prompt=PROMPT)
    assert again.requests == []
    bare = ReferencePolicy()  # another prompt: the shards are stale, every problem is sampled again
    rollout_stage(tmp_path / "problems.jsonl", rcfg, tmp_path / "sols.jsonl", tmp_path / "work", generator=bare)
    assert len(bare.requests) == 6 and all(len(r.messages) == 1 for r in bare.requests)

    sols = read_records(tmp_path / "sols.jsonl", Solution)
    assert sols and all(s.correct for s in sols)
    mcfg = MonteCarloConfig.model_validate({
        "engine": {"backend": "vllm", "settings": {"model": str(model)}}, "k_thresholds": [[1.0, 2]], "shard_size": 3,
    })
    completer = ReferencePolicy()
    montecarlo_stage(tmp_path / "problems.jsonl", tmp_path / "sols.jsonl", mcfg, tmp_path / "values.jsonl",
                     tmp_path / "mc", generator=completer, prompt=PROMPT)
    assert completer.requests and all(list(r.messages[:-1]) == SHOWN for r in completer.requests)
    assert all(r.assistant_prefix.startswith("Step 1: ") for r in completer.requests)
