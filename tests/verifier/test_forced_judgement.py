"""The verifier never fails open: a judgement it could not parse is forced and read from the logits."""

from __future__ import annotations

import math

import pytest

from genprm.conversation import FALLBACK_JUDGEMENT, OUTPUT_STOP, parse_judgement
from genprm.engine import create_generator
from genprm.engine.base import EngineError, GenerationRequest
from genprm.verifier import FORCED_CANDIDATES, GenPRMVerifier, VerifierOptions, forced_reward, forced_summary


class _NoJudgement:
    """The world teacher, except that every verify turn closes its output without a boxed Yes/No."""

    def __init__(self) -> None:
        self.inner = create_generator("world-teacher")
        self.backend = "world-teacher"
        self.scored: list[GenerationRequest] = []

    def generate(self, requests):
        outs = self.inner.generate(requests)
        for req, group in zip(requests, outs):
            for c in group:
                if c.stop_string == OUTPUT_STOP:
                    c.text = c.text[: c.text.rfind("<output>")] + "<output>\nI am not sure.\n</output>\n"
        return outs

    def score_continuations(self, prompt, candidates):
        self.scored.append(prompt)
        return self.inner.score_continuations(prompt, candidates)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def close(self):
        pass


def test_unparsed_judgement_is_forced_not_half(world_solutions, sandbox):
    gen = _NoJudgement()
    results = GenPRMVerifier(gen, sandbox, VerifierOptions(n_paths=2)).verify(world_solutions[:4])
    paths = [p for r in results for s in r.steps for p in s.paths]
    assert paths and all(p.forced and p.reason == "no_judgement" for p in paths)
    assert all(min(p.reward, 1 - p.reward) < 1e-6 for p in paths)  # the teacher's scores: certain, never 0.5
    assert len(gen.scored) == len(paths)  # one logit read per forced turn
    assert all(r.assistant_prefix.endswith(FALLBACK_JUDGEMENT) for r in gen.scored)
    for p in paths:  # the turn ends with the likelier judgement, as later steps will read it
        assert p.text.endswith(OUTPUT_STOP) and parse_judgement(p.text) is (p.reward >= 0.5) and p.verdict is (p.reward >= 0.5)
        assert "[Code Output]" not in p.text  # the analysis alone, as the released code falls back
    summary = forced_summary(results)
    assert summary == {"turns": len(paths), "forced": len(paths), "share": 1.0, "by_reason": {"no_judgement": len(paths)}}
    assert all(v.forced == 1.0 for r in results for v in r.verdicts())


def test_token_budget_forces_every_judgement(world_solutions, sandbox):
    gen = create_generator("world-teacher")
    results = GenPRMVerifier(gen, sandbox, VerifierOptions(max_tokens=3)).verify(world_solutions[:3])
    paths = [p for r in results for s in r.steps for p in s.paths]
    assert all(p.forced and p.reason == "analysis_unfinished" and p.code_rounds == 0 for p in paths)
    assert all(r.forced_shares == [1.0] * len(r.steps) for r in results)
    # no output was read, so the rule teacher judges No: a step nobody checked is never a pass
    assert all(p.reward < 1e-6 for p in paths) and all(r.first_error() == 0 for r in results)


def test_unjudged_turns_counted_by_reason(world_solutions, sandbox):
    ok = GenPRMVerifier(create_generator("world-teacher"), sandbox).verify(world_solutions[:2])
    assert forced_summary(ok)["forced"] == 0 and forced_summary(ok)["share"] == 0.0
    rounds = GenPRMVerifier(create_generator("world-teacher"), sandbox, VerifierOptions(max_code_rounds=0)).verify(
        world_solutions[:2])
    summary = forced_summary(rounds)
    assert summary["share"] == 1.0 and summary["by_reason"] == {"code_rounds": summary["turns"]}
    assert forced_summary([]) == {"turns": 0, "forced": 0, "share": 0.0, "by_reason": {}}


def test_forced_reward_needs_the_forced_prefix_and_a_scoring_engine():
    gen = create_generator("world-teacher")
    req = GenerationRequest(prompt="x", assistant_prefix="<analyze>\n")
    with pytest.raises(ValueError, match="FALLBACK_JUDGEMENT"):
        forced_reward(gen, req)

    class _CannotScore:
        backend = "openai"

        def score_continuations(self, prompt, candidates):
            raise NotImplementedError("no local tokenizer")

    with pytest.raises(EngineError, match="cannot score continuations"):
        forced_reward(_CannotScore(), GenerationRequest(prompt="x", assistant_prefix=FALLBACK_JUDGEMENT))


def _expected(gen, request) -> float:
    yes, no = gen.score_continuations(request, list(FORCED_CANDIDATES))
    return math.exp(yes) / (math.exp(yes) + math.exp(no))


def _check_soft_forced(gen, world_solutions, sandbox):
    """Every turn over budget: each reward is P(Yes)/(P(Yes)+P(No)) read from the model at the forced prefix."""
    sols = world_solutions[:2]
    seen: list[GenerationRequest] = []

    class _Spy:
        backend = gen.backend

        def generate(self, requests):
            return gen.generate(requests)

        def score_continuations(self, prompt, candidates):
            seen.append(prompt)
            return gen.score_continuations(prompt, candidates)

        def count_tokens(self, text):
            return gen.count_tokens(text)

        def close(self):
            pass

    results = GenPRMVerifier(_Spy(), sandbox, VerifierOptions(max_tokens=2, seed=1)).verify(sols)
    # in the order the verifier forces them: step by step, solutions in order (one path each)
    paths = [r.steps[t].paths[0] for t in range(max(len(s) for _, s in sols)) for r in results if t < len(r.steps)]
    assert len(seen) == len(paths) and all(p.forced for p in paths)
    for p, req in zip(paths, seen):
        assert p.reward == pytest.approx(_expected(gen, req), abs=1e-6)
    assert all(0.0 < p.reward < 1.0 for p in paths)  # soft, from the logits
    assert len({round(p.reward, 6) for p in paths}) > 1  # and depends on the context
    assert all(p.reward != 0.5 for p in paths)
    return paths, seen


@pytest.mark.slow
def test_forced_judgement_from_hf_logits(world_solutions, sandbox, hf_genprm):
    paths, _ = _check_soft_forced(hf_genprm, world_solutions, sandbox)
    # the engine's batched scoring (one call per step) reads the same probabilities
    batched = GenPRMVerifier(hf_genprm, sandbox, VerifierOptions(max_tokens=2, seed=1)).verify(world_solutions[:2])
    again = [r.steps[t].paths[0] for t in range(max(len(r.steps) for r in batched)) for r in batched if t < len(r.steps)]
    assert [p.text for p in again] == [p.text for p in paths]
    assert [p.reward for p in again] == pytest.approx([p.reward for p in paths], abs=1e-5)


@pytest.mark.slow
@pytest.mark.vllm
def test_forced_judgement_from_vllm_logits_matches_hf(world_solutions, sandbox, hf_genprm, tiny_genprm):
    gen = create_generator("vllm", model=tiny_genprm, dtype="float32")
    try:
        paths, requests = _check_soft_forced(gen, world_solutions, sandbox)
    finally:
        gen.close()
    # the same forced prompts read on the hf backend give the same probabilities
    for p, req in zip(paths, requests):
        assert forced_reward(hf_genprm, req) == pytest.approx(p.reward, abs=2e-3)
