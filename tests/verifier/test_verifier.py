"""The batched GenPRM verifier: protocol, code execution, rewards, Maj@N, determinism."""

from __future__ import annotations

import math

import pytest

from genprm.conversation import (
    ANALYZE_STOP,
    CODE_STOP,
    FALLBACK_JUDGEMENT,
    OUTPUT_STOP,
    SYSTEM_PROMPT,
    VERIFY_PREFIX,
    analyze_prefix,
)
from genprm.engine import create_generator
from genprm.engine.base import Completion
from genprm.verifier import GenPRMVerifier, VerifierOptions, derive_seed, judgement_reward
from genprm.world.checker import check_solution


class Recording:
    """A real generator that also keeps every batch of requests it was given."""

    def __init__(self, inner):
        self.inner, self.backend, self.calls = inner, inner.backend, []

    def generate(self, requests):
        self.calls.append(list(requests))
        return self.inner.generate(requests)

    def score_continuations(self, prompt, candidates):
        return self.inner.score_continuations(prompt, candidates)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def close(self):
        self.inner.close()


def test_world_teacher_verdicts_follow_executed_code(world_solutions, sandbox):
    gen = create_generator("world-teacher")
    results = GenPRMVerifier(gen, sandbox, VerifierOptions(n_paths=2)).verify(world_solutions)
    assert len(results) == len(world_solutions)
    n_errors = 0
    for (problem, steps), res in zip(world_solutions, results):
        truth = check_solution(problem, steps).first_error
        n_errors += truth >= 0
        assert len(res.rewards) == len(steps)
        assert all(r in (0.0, 1.0) for r in res.rewards)  # no logprobs: parsed judgement
        assert res.first_error() == truth
        for step in res.steps:
            assert len(step.paths) == 2 and all(p.code_rounds == 1 and not p.forced for p in step.paths)
            assert "[Code Output]" in step.paths[0].text
    assert n_errors >= 3
    verdicts = results[1].verdicts()
    assert [v.step for v in verdicts] == list(range(len(world_solutions[1][1])))


def test_one_engine_call_per_stage_and_exact_protocol(world_solutions, sandbox):
    gen = Recording(create_generator("world-teacher"))
    sols = world_solutions[:4]
    results = GenPRMVerifier(gen, sandbox, VerifierOptions(n_paths=3, seed=5)).verify(sols)
    max_steps = max(len(s) for _, s in sols)
    # per step: analysis, verify (ends in code), verify (ends in the judgement): 3 calls, any batch size
    assert len(gen.calls) == 3 * max_steps
    first = gen.calls[0]
    assert len(first) == 4 * 3
    req = first[0]
    problem, steps = sols[0]
    assert req.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert req.messages[1] == {"role": "user", "content": f"{problem}\n{steps[0]}"}
    # the prompt ends before the prefix's trailing space (generated with the first word); the turn has it
    assert req.assistant_prefix == analyze_prefix(1).rstrip(" ") and req.stop == (ANALYZE_STOP,) and req.include_stop
    assert results[0].steps[0].paths[0].text.startswith(analyze_prefix(1) + "Paragraph 1 claims")
    assert (req.temperature, req.top_p, req.top_k) == (0.6, 0.95, 20)
    verify = gen.calls[1][0]
    assert verify.assistant_prefix.endswith(ANALYZE_STOP + VERIFY_PREFIX)
    assert verify.stop == (CODE_STOP, OUTPUT_STOP) and verify.logprobs == 20
    # step 2 sees step 1's whole turn as an assistant message
    step2 = gen.calls[3][0]
    assert step2.messages[2]["role"] == "assistant" and step2.messages[2]["content"].endswith(OUTPUT_STOP)
    assert step2.messages[3] == {"role": "user", "content": steps[1]}
    seeds = [r.seed for r in first]
    assert len(set(seeds)) == len(seeds) and seeds[0] == derive_seed(5, 0, 0, 1, "analyze", 0)


def test_batched_equals_serial(world_solutions, sandbox):
    gen = create_generator("world-teacher", noise=0.3, seed=1)
    v = GenPRMVerifier(gen, sandbox, VerifierOptions(n_paths=2))
    batched, serial = v.verify(world_solutions[:5]), v.verify_serial(world_solutions[:5])
    assert [b.rewards for b in batched] == [s.rewards for s in serial]
    assert [[p.text for st in b.steps for p in st.paths] for b in batched] == [
        [p.text for st in s.steps for p in st.paths] for s in serial
    ]


def test_bad_input_raises(sandbox):
    v = GenPRMVerifier(create_generator("world-teacher"), sandbox)
    with pytest.raises(ValueError, match="at least one step"):
        v.verify([("Compute 1 + 1.", [])])
    with pytest.raises(ValueError, match="problem is empty"):
        v.verify([("", ["1 + 1 = 2"])])


class _Tok:
    vocab = {1: "Yes", 2: "No", 3: "{", 4: "}$", 5: "x", 6: "{Yes"}

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)


def _decode(t):
    return t if isinstance(t, str) else _Tok.vocab[t]


def test_judgement_reward_softmax_and_missing_tokens():
    prefix = FALLBACK_JUDGEMENT
    c = Completion("{Yes}$", [3, 1, 4], "stop", None, [-0.1, -0.2, -0.1], [{3: -0.1}, {1: -0.2, 2: -1.9, 5: -3.0}, {4: -0.1}])
    expected = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.9))
    assert judgement_reward(prefix, c, _decode) == pytest.approx(expected)
    # No missing from the top-k: the smallest returned logprob stands in
    c2 = Completion("{Yes}$", [3, 1, 4], "stop", None, [-0.1, -0.2, -0.1], [{3: -0.1}, {1: -0.2, 5: -4.0}, {4: -0.1}])
    assert judgement_reward(prefix, c2, _decode) == pytest.approx(math.exp(-0.2) / (math.exp(-0.2) + math.exp(-4.0)))
    # a merged "{Yes" token counts as Yes
    c3 = Completion("{Yes}$", [6, 4], "stop", None, [-0.5, -0.1], [{6: -0.5, 2: -1.0}, {4: -0.1}])
    assert judgement_reward(prefix, c3, _decode) == pytest.approx(1 / (1 + math.exp(-0.5)))
    # no logprobs: parsed judgement; no judgement: no reward (the verifier then forces one)
    assert judgement_reward(prefix, Completion("{No}$", [], "stop"), None) == 0.0
    assert judgement_reward(prefix, Completion("{Yes}$", [], "stop"), _decode) == 1.0
    assert judgement_reward(prefix, Completion("maybe", [5], "length", None, [-1.0], [{5: -1.0}]), _decode) is None
    # servers that give token strings, no ids
    c4 = Completion("{No}$", [], "stop", None, [-0.3, -0.7], [{"{": -0.3}, {"No": -0.7, "Yes": -0.9}])
    assert judgement_reward(prefix, c4, _decode) == pytest.approx(math.exp(-0.9) / (math.exp(-0.9) + math.exp(-0.7)))


@pytest.mark.slow
def test_tiny_genprm_on_hf_runs_code_and_soft_rewards(world_solutions, sandbox, hf_genprm):
    sols = world_solutions[:2]
    opts = VerifierOptions(n_paths=2, max_tokens=72, seed=3)
    v = GenPRMVerifier(hf_genprm, sandbox, opts)
    a = v.verify(sols)
    b = v.verify(sols)
    assert [r.rewards for r in a] == [r.rewards for r in b]  # deterministic with a seed
    paths = [p for r in a for s in r.steps for p in s.paths]
    assert any(p.code_rounds > 0 for p in paths) and any("[Code Output]" in p.text for p in paths)
    judged = [p for p in paths if p.verdict is not None]
    assert judged and any(0.0 < p.reward < 1.0 for p in judged)  # softmax of logprobs, not 0/1
    for r in a:
        for s in r.steps:
            assert s.reward == pytest.approx(sum(p.reward for p in s.paths) / 2)  # Maj@N mean
            assert all(p.text.startswith(analyze_prefix(s.step + 1)) for p in s.paths)
