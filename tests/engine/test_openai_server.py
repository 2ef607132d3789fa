"""The ``openai`` backend against a real vLLM OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pytest

from genprm.engine import Completion, GenerationRequest, Generator, create_generator

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.server]

MSGS = [{"role": "user", "content": "Compute ((2 + 9) * 3) - 4."}]


@pytest.fixture(scope="module")
def openai_gen(api_server: str, tiny_model: str) -> Generator:
    return create_generator("openai", model="tiny", base_url=api_server, tokenizer=tiny_model, max_concurrency=4)


@pytest.fixture(scope="module")
def openai_chat_gen(api_server: str) -> Generator:
    return create_generator("openai", model="tiny", base_url=api_server)


def _key(cs: list[Completion]) -> list[tuple]:
    return [(c.text, c.token_ids, c.finish_reason, c.stop_string) for c in cs]


def test_server_matches_in_process_vllm(openai_gen: Generator, vllm_gen: Generator) -> None:
    reqs = [
        GenerationRequest(messages=MSGS, temperature=0.0, max_tokens=64, logprobs=2),
        GenerationRequest(messages=MSGS, temperature=0.0, max_tokens=64, stop=("\n",), include_stop=True),
        GenerationRequest(messages=MSGS, temperature=0.0, max_tokens=64, stop=("\n",)),
        GenerationRequest(messages=MSGS, assistant_prefix="Step 1:", temperature=0.0, max_tokens=6, n=2),
        GenerationRequest(prompt="Step 1: 4 + 5 =", temperature=0.0, max_tokens=10),
    ]
    remote, local = openai_gen.generate(reqs), vllm_gen.generate(reqs)
    assert [_key(cs) for cs in remote] == [_key(cs) for cs in local]
    assert remote[0][0].finish_reason == "eos" and remote[1][0].stop_string == "\n"
    assert remote[3][0].finish_reason == "length" and len(remote[3]) == 2
    r, v = remote[0][0], local[0][0]
    assert r.token_logprobs == pytest.approx(v.token_logprobs, abs=1e-3)
    for tr, tv in zip(r.logprobs, v.logprobs):  # type: ignore[arg-type]
        assert set(tr) == set(tv) and all(isinstance(k, int) for k in tr)
        assert [tr[k] for k in tv] == pytest.approx(list(tv.values()), abs=1e-3)


def test_server_scores_and_counts(openai_gen: Generator, vllm_gen: Generator) -> None:
    req = GenerationRequest(messages=[{"role": "user", "content": "Compute 3 + 4."}], assistant_prefix="Step 1: 3 + 4 =")
    cands = [" 7", " 8"]
    assert openai_gen.score_continuations(req, cands) == pytest.approx(vllm_gen.score_continuations(req, cands), abs=1e-3)
    assert openai_gen.count_tokens("Step 1: 12 + 345 = 357") == 17


def test_chat_completions_without_local_tokenizer(openai_chat_gen: Generator, vllm_gen: Generator) -> None:
    reqs = [
        GenerationRequest(messages=MSGS, temperature=0.0, max_tokens=40, stop=("\n",), logprobs=1),
        GenerationRequest(messages=MSGS, assistant_prefix="Step 1: 2 + 9 =", temperature=0.0, max_tokens=8),
    ]
    remote, local = openai_chat_gen.generate(reqs), vllm_gen.generate(reqs)
    assert [_key(cs) for cs in remote] == [_key(cs) for cs in local]
    assert remote[0][0].token_logprobs == pytest.approx(local[0][0].token_logprobs, abs=1e-3)
    assert openai_chat_gen.count_tokens("Step 1: 12 + 345 = 357") == 17  # the server's /tokenize
