"""The ``vllm`` backend (in-process engine on CPU) against the ``hf`` backend on the tiny model."""

from __future__ import annotations

import random

import pytest

from genprm.engine import Completion, GenerationRequest, Generator
from genprm.engine.tiny_model import arithmetic_solution

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def parity_requests(count: int = 50, seed: int = 123) -> list[GenerationRequest]:
    """Chat problems, some with a forced ``Step 1:`` prefix, some plain text prompts."""
    rng = random.Random(seed)
    reqs = []
    for i in range(count):
        problem, solution = arithmetic_solution(rng)
        if i % 5 == 4:
            reqs.append(GenerationRequest(prompt=solution.split("\n")[0][:12], temperature=0.0, max_tokens=32, logprobs=3))
        else:
            prefix = "Step 1:" if i % 5 == 3 else ""
            reqs.append(
                GenerationRequest(
                    messages=[{"role": "user", "content": problem}],
                    assistant_prefix=prefix,
                    temperature=0.0,
                    max_tokens=48,
                    logprobs=3,
                )
            )
    return reqs


def test_greedy_and_logprobs_match_hf(vllm_gen: Generator, hf_gen: Generator) -> None:
    reqs = parity_requests()
    v = [c[0] for c in vllm_gen.generate(reqs)]
    h = [c[0] for c in hf_gen.generate(reqs)]
    same = [a.token_ids == b.token_ids for a, b in zip(v, h)]
    assert sum(same) >= 0.95 * len(reqs), f"only {sum(same)}/{len(reqs)} greedy continuations agree"
    assert len({tuple(c.token_ids) for c in v}) > 10  # not one degenerate answer for every prompt
    worst = 0.0
    for a, b, ok in zip(v, h, same):
        if not ok:
            continue
        assert (a.text, a.finish_reason, a.stop_string) == (b.text, b.finish_reason, b.stop_string)
        for ta, tb in zip(a.logprobs, b.logprobs):  # type: ignore[arg-type]
            common = set(ta) & set(tb)
            assert len(common) >= 3
            worst = max(worst, *(abs(ta[k] - tb[k]) for k in common))
    assert worst < 1e-3


def test_stop_strings_n_and_finish_reasons_match_hf(vllm_gen: Generator, hf_gen: Generator) -> None:
    msgs = [{"role": "user", "content": "Compute ((2 + 9) * 3) - 4."}]
    reqs = [
        GenerationRequest(messages=msgs, temperature=0.0, max_tokens=64),
        GenerationRequest(messages=msgs, temperature=0.0, max_tokens=64, stop=("\n",), include_stop=True),
        GenerationRequest(messages=msgs, temperature=0.0, max_tokens=64, stop=("\n",), include_stop=False),
        GenerationRequest(messages=msgs, temperature=0.0, max_tokens=64, stop=(" =", "Step 2"), include_stop=True),
        GenerationRequest(messages=msgs, temperature=0.0, max_tokens=5, n=3),
        GenerationRequest(messages=msgs, assistant_prefix="Step 1: 2 + 9 =", temperature=0.0, max_tokens=64,
                          stop=("\nStep",), include_stop=False),
    ]
    v, h = vllm_gen.generate(reqs), hf_gen.generate(reqs)

    def key(cs: list[Completion]) -> list[tuple]:
        return [(c.text, c.token_ids, c.finish_reason, c.stop_string) for c in cs]

    assert [key(cs) for cs in v] == [key(cs) for cs in h]
    assert v[0][0].finish_reason == "eos"
    assert v[1][0].text == v[2][0].text + "\n" and v[1][0].stop_string == "\n"
    assert v[3][0].text.endswith(" =") and v[3][0].stop_string == " ="
    assert len(v[4]) == 3 and all(c.finish_reason == "length" and len(c.token_ids) == 5 for c in v[4])
    assert v[5][0].finish_reason in ("stop", "eos") and "\nStep" not in v[5][0].text


def test_sampling_is_seeded(vllm_gen: Generator) -> None:
    msgs = [{"role": "user", "content": "Compute (3 + 4) * 2 - 5."}]
    req = GenerationRequest(messages=msgs, n=8, temperature=1.0, top_p=0.95, top_k=50, seed=11, max_tokens=30)
    [a], [b] = vllm_gen.generate([req]), vllm_gen.generate([req])
    assert len(a) == 8
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert len({tuple(c.token_ids) for c in a}) > 1


def test_large_seeded_batch_is_deterministic(vllm_gen: Generator) -> None:
    rng = random.Random(3)
    reqs = [
        GenerationRequest(messages=[{"role": "user", "content": arithmetic_solution(rng)[0] * 4}], n=8,
                          temperature=1.0, seed=i, max_tokens=3)
        for i in range(40)
    ]  # > 2048 prompt tokens per step: the batch needs several scheduler steps
    a, b = vllm_gen.generate(reqs), vllm_gen.generate(reqs)
    assert [len(cs) for cs in a] == [8] * 40
    assert [[c.token_ids for c in cs] for cs in a] == [[c.token_ids for c in cs] for cs in b]


def test_score_continuations_match_hf(vllm_gen: Generator, hf_gen: Generator) -> None:
    req = GenerationRequest(messages=[{"role": "user", "content": "Compute 3 + 4."}], assistant_prefix="Step 1: 3 + 4 =")
    cands = [" 7", " 8", " 7\nThe answer is 7."]
    v, h = vllm_gen.score_continuations(req, cands), hf_gen.score_continuations(req, cands)
    assert v == pytest.approx(h, abs=1e-3)
    assert all(x < 0 for x in v)
    assert vllm_gen.count_tokens("Step 1: 12 + 345 = 357") == hf_gen.count_tokens("Step 1: 12 + 345 = 357")


def test_score_many_is_score_continuations_of_each_prompt_in_one_call(vllm_gen: Generator, hf_gen: Generator) -> None:
    prompts = [
        GenerationRequest(messages=[{"role": "user", "content": f"Compute {a} + {b}."}], assistant_prefix=f"Step 1: {a} + {b} =")
        for a, b in ((3, 4), (12, 5), (7, 9))
    ] + ["Step 1: 2 * 6 ="]
    cands = [" 7", " 12", " 16"]
    for gen in (vllm_gen, hf_gen):
        many = gen.score_many(prompts, cands)
        assert len(many) == len(prompts) and all(len(row) == len(cands) for row in many)
        for p, row in zip(prompts, many):
            assert row == pytest.approx(gen.score_continuations(p, cands), abs=1e-4)
    flat = lambda rows: [x for row in rows for x in row]  # noqa: E731
    assert flat(vllm_gen.score_many(prompts, cands)) == pytest.approx(flat(hf_gen.score_many(prompts, cands)), abs=1e-3)
    assert vllm_gen.score_many([], cands) == []


def test_too_long_prompt_names_the_request(vllm_gen: Generator) -> None:
    with pytest.raises(ValueError, match=r"request 2: prompt is 1500 tokens, the context is 1024 tokens"):
        vllm_gen.generate([GenerationRequest(prompt="1 + 1")] * 2 + [GenerationRequest(prompt="2" * 1500)])
    [[c]] = vllm_gen.generate([GenerationRequest(prompt="1" * 1020, temperature=0.0, max_tokens=50)])
    assert len(c.token_ids) <= 4
