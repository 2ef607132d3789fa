"""Every PRM kind behind one interface, each on a tiny local model."""

from __future__ import annotations

import pytest

from genprm.prm import PRM, create_prm, prm_kinds


def test_registry_names_kinds_and_suggests():
    assert prm_kinds() == ["direct", "discriminative", "genprm"]
    with pytest.raises(ValueError, match="did you mean 'genprm'"):
        create_prm("genprn")


def test_genprm_kind_scores(world_solutions, sandbox):
    from genprm.engine import create_generator

    prm = create_prm("genprm", generator=create_generator("world-teacher"), sandbox=sandbox)
    assert isinstance(prm, PRM)
    problems, sols = zip(*world_solutions[:3])
    rewards = prm.score(list(problems), list(sols))
    assert [len(r) for r in rewards] == [len(s) for s in sols]


@pytest.mark.slow
def test_direct_prm_on_tiny_model(world_solutions, hf_genprm):
    prm = create_prm("direct", generator=hf_genprm)
    problems, sols = zip(*world_solutions[:2])
    rewards = prm.score(list(problems), list(sols))
    assert [len(r) for r in rewards] == [len(s) for s in sols]
    assert all(0.0 < x < 1.0 for r in rewards for x in r)
    assert rewards == prm.score(list(problems), list(sols))
    with pytest.raises(ValueError, match="non-empty list"):
        prm.score(["p"], [[]])


def test_discriminative_prm_tiny_random_head(world_solutions):
    import torch
    from transformers import LlamaConfig, LlamaForTokenClassification

    from genprm.world.policy import tokenizer_corpus
    from genprm.world.problems import generate_problems
    from genprm.world.tokenizer import train_tokenizer

    tok = train_tokenizer(tokenizer_corpus(generate_problems(30, 0), 0), vocab_size=300)
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=2, pad_token_id=tok.pad_token_id)
    prm = create_prm("discriminative", model=LlamaForTokenClassification(cfg), tokenizer=tok)
    problems, sols = zip(*world_solutions[:3])
    rewards = prm.score(list(problems), list(sols))
    assert [len(r) for r in rewards] == [len(s) for s in sols]
    assert all(0.0 < x < 1.0 for r in rewards for x in r) and len({x for r in rewards for x in r}) > 1
    with pytest.raises(ValueError, match="contains the separator"):
        prm.score(["p"], [["a <extra_0> b"]])
    with pytest.raises(ValueError, match="exactly one"):
        create_prm("discriminative", model=LlamaForTokenClassification(cfg), tokenizer=tok, separator="<none> here")
