"""The ``hf`` backend on the tiny model: semantics every backend must share."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from genprm.engine import Completion, GenerationRequest, Generator, create_generator

pytestmark = pytest.mark.slow

PROBLEM = [{"role": "user", "content": "Compute (3 + 4) * 2 - 5."}]


def greedy(**kw: object) -> GenerationRequest:
    kw.setdefault("messages", PROBLEM)
    return GenerationRequest(temperature=0.0, **kw)  # type: ignore[arg-type]


def test_protocol_and_count_tokens(hf_gen: Generator) -> None:
    assert isinstance(hf_gen, Generator)
    assert hf_gen.count_tokens("Step 1: 12 + 345 = 357") == 17  # digits are single tokens
    assert hf_gen.count_tokens("") == 0


def test_eos_length_and_stop(hf_gen: Generator) -> None:
    eos_id = hf_gen.tokenizer.eos_token_id  # type: ignore[attr-defined]
    full, short, kept, cut = hf_gen.generate(
        [
            greedy(max_tokens=200),
            greedy(max_tokens=5),
            greedy(max_tokens=200, stop=("\n",), include_stop=True),
            greedy(max_tokens=200, stop=("\n",), include_stop=False),
        ]
    )
    [full], [short], [kept], [cut] = full, short, kept, cut
    assert full.finish_reason == "eos" and full.token_ids[-1] == eos_id
    assert "<|end|>" not in full.text and full.text.startswith("Step 1:")
    assert short.finish_reason == "length" and len(short.token_ids) == 5
    assert short.token_ids == full.token_ids[:5]
    assert kept.finish_reason == cut.finish_reason == "stop"
    assert kept.stop_string == cut.stop_string == "\n"
    assert kept.text == cut.text + "\n" and "\n" not in cut.text
    assert full.text.startswith(kept.text)
    assert kept.token_ids == cut.token_ids == full.token_ids[: len(kept.token_ids)]


def test_batching_does_not_change_greedy_results(hf_gen: Generator) -> None:
    reqs = [
        greedy(messages=[{"role": "user", "content": f"Compute {a} + {b} * 2."}], max_tokens=m, stop=s)
        for a, b, m, s in [(1, 2, 40, ()), (13, 7, 12, ("=",)), (5, 19, 30, ("\n",)), (20, 3, 25, ())]
    ]
    reqs.append(GenerationRequest(prompt="Step 1: 4 + 5 =", temperature=0.0, max_tokens=8))
    batched = [c[0] for c in hf_gen.generate(reqs)]
    alone = [hf_gen.generate([r])[0][0] for r in reqs]
    assert [c.token_ids for c in batched] == [c.token_ids for c in alone]
    assert [c.text for c in batched] == [c.text for c in alone]


def test_n_and_seed(hf_gen: Generator) -> None:
    [g] = hf_gen.generate([greedy(n=3, max_tokens=20)])
    assert len(g) == 3 and len({c.text for c in g}) == 1
    req = GenerationRequest(messages=PROBLEM, n=6, temperature=1.0, seed=7, max_tokens=30)
    [a] = hf_gen.generate([req])
    [b] = hf_gen.generate([req])
    assert len(a) == 6
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert len({tuple(c.token_ids) for c in a}) > 1


def test_logprobs_shape_and_consistency(hf_gen: Generator) -> None:
    [[c]] = hf_gen.generate([greedy(max_tokens=20, logprobs=3)])
    assert c.logprobs is not None and c.token_logprobs is not None
    assert len(c.logprobs) == len(c.token_ids) == len(c.token_logprobs)
    for tok, lp, top in zip(c.token_ids, c.token_logprobs, c.logprobs):
        assert 3 <= len(top) <= 4 and top[tok] == lp <= 0.0
        assert lp == max(top.values())  # greedy picks the arg-max
    [[plain]] = hf_gen.generate([greedy(max_tokens=20)])
    assert plain.logprobs is None and plain.token_ids == c.token_ids


def test_score_continuations_matches_generation_logprobs(hf_gen: Generator) -> None:
    req = greedy(assistant_prefix="Step 1:", max_tokens=12, logprobs=0)
    [[c]] = hf_gen.generate([req])
    assert c.finish_reason == "length"
    good, bad = hf_gen.score_continuations(req, [c.text, c.text[:-1] + "#"])
    assert good == pytest.approx(c.cumulative_logprob, abs=1e-4)
    assert bad < good
    yes, no = hf_gen.score_continuations("Step 1: 3 + 4 = 7\nThe answer is", [" 7", " 8"])
    assert yes != no


def test_partial_assistant_message_is_continued(hf_gen: Generator) -> None:
    [[c]] = hf_gen.generate([greedy(assistant_prefix="Step 1: 3 + 4 =", max_tokens=6, stop=("\n",))])
    tok = hf_gen.tokenizer  # type: ignore[attr-defined]
    rendered = tok.apply_chat_template(PROBLEM, tokenize=False, add_generation_prompt=True) + "Step 1: 3 + 4 ="
    [[same]] = hf_gen.generate([GenerationRequest(prompt=rendered, temperature=0.0, max_tokens=6, stop=("\n",))])
    assert c.token_ids == same.token_ids and c.text == same.text


def test_too_long_prompt_names_the_request(hf_gen: Generator, caplog: pytest.LogCaptureFixture) -> None:
    long_prompt = "1" * 1500
    with pytest.raises(ValueError, match=r"request 1: prompt is 1500 tokens, the context is 1024 tokens"):
        hf_gen.generate([greedy(max_tokens=4), GenerationRequest(prompt=long_prompt, max_tokens=4)])
    with caplog.at_level(logging.WARNING, logger="genprm.engine.prompts"):
        [[c]] = hf_gen.generate([GenerationRequest(prompt="1" * 1020, temperature=0.0, max_tokens=50)])
    assert "request 0: prompt 1020 + max_tokens 50 > context 1024" in caplog.text
    assert len(c.token_ids) <= 4 and (c.finish_reason == "length" or c.finish_reason == "eos")


def _texts(comps: list[list[Completion]]) -> list[list[str]]:
    return [[c.text for c in cs] for cs in comps]


def test_empty_batch(hf_gen: Generator) -> None:
    assert _texts(hf_gen.generate([])) == []


def test_model_generation_config_does_not_leak_in(hf_gen: Generator, tiny_model: str, tmp_path: Path) -> None:

    folder = shutil.copytree(tiny_model, tmp_path / "model")
    cfg = json.loads((folder / "generation_config.json").read_text())
    cfg.update(repetition_penalty=3.0, no_repeat_ngram_size=2, temperature=0.1, top_k=2, do_sample=True)
    (folder / "generation_config.json").write_text(json.dumps(cfg))
    other = create_generator("hf", model=folder, dtype="float32")
    reqs = [greedy(max_tokens=40), GenerationRequest(messages=PROBLEM, temperature=1.0, seed=3, n=4, max_tokens=20)]
    assert [[c.token_ids for c in cs] for cs in other.generate(reqs)] == [
        [c.token_ids for c in cs] for cs in hf_gen.generate(reqs)
    ]
    other.close()


def test_shared_prompt_prefill_does_not_change_samples(hf_gen: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    reqs = [
        GenerationRequest(messages=PROBLEM, n=3, temperature=1.0, seed=5, max_tokens=16, logprobs=2),
        GenerationRequest(messages=[{"role": "user", "content": "Compute 2 + 9."}], n=2, temperature=1.0, max_tokens=16),
        greedy(max_tokens=16),
    ]
    shared = hf_gen.generate(reqs)
    monkeypatch.setattr(hf_gen, "_shared_prefill", lambda *args: None)
    separate = hf_gen.generate(reqs)
    assert [[c.token_ids for c in cs] for cs in shared] == [[c.token_ids for c in cs] for cs in separate]
    lps = [[c.token_logprobs for c in cs] for cs in separate]
    assert [[c.token_logprobs for c in cs] for cs in shared] == [[pytest.approx(lp, abs=1e-5) for lp in x] for x in lps]


def _draw(scores: list[float], draws: int, **kw: float) -> list[int]:
    import torch

    from genprm.engine.hf_backend import _RowSampler

    opts = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, **kw}
    sampler = _RowSampler(generator=torch.Generator().manual_seed(0), **opts)  # type: ignore[arg-type]
    out = sampler(None, torch.tensor([scores] * draws))
    assert (out.max(-1).values == 0).all() and torch.isinf(out).sum() == draws * (len(scores) - 1)  # one-hot
    return out.argmax(-1).bincount(minlength=len(scores)).tolist()


def test_row_sampler_draws_from_the_softmax() -> None:
    import math

    counts = _draw([math.log(0.6), math.log(0.3), math.log(0.1)], 20000)
    assert [c / 20000 for c in counts] == pytest.approx([0.6, 0.3, 0.1], abs=0.015)


def test_row_sampler_temperature_top_k_and_top_p() -> None:
    import math

    logits = [math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]
    cold = _draw(logits, 4000, temperature=0.25)  # p^4: 0.5 -> 0.87
    assert cold[0] / 4000 == pytest.approx(0.0625 / (0.0625 + 0.0081 + 0.0005 + 0.00000625), abs=0.03)
    assert _draw(logits, 4000, top_k=2)[2:] == [0, 0]
    assert _draw(logits, 4000, top_p=0.8)[2:] == [0, 0]  # 0.5 + 0.3 reaches 0.8
    assert _draw(logits, 4000, top_p=0.81)[3] == 0 and _draw(logits, 4000, top_p=0.81)[2] > 0
    assert _draw(logits, 100, top_k=1) == [100, 0, 0, 0]
