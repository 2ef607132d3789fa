"""The loss mask: exactly the text the GenPRM generates is trained on."""

from __future__ import annotations

import pytest

from genprm.conversation import SYSTEM_PROMPT, VERIFY_PREFIX, analyze_prefix, prompt_prefix
from genprm.training.masking import IGNORE, tokenize_example, trained_text


@pytest.fixture(scope="module")
def tokenizer(base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model)


def expected_trained(messages: list[dict], train_on_prefixes: bool) -> str:
    """What must be trained, built from the record's spans independently of the tokenizer."""
    out = []
    for m in messages:
        if m["role"] != "assistant":
            continue
        content = m["content"]
        holes = [tuple(s) for s in m["exec_spans"]]
        if not train_on_prefixes:
            holes += [(s, s + len(content[s:e].rstrip(" "))) for s, e in m["prefix_spans"]]
        keep = [i for i in range(len(content)) if not any(a <= i < b for a, b in holes)]
        out.append("".join(content[i] for i in keep) + "<|im_end|>")
    return "".join(out)


@pytest.mark.parametrize("train_on_prefixes", [False, True])
def test_trained_tokens_are_exactly_the_generated_text(examples, tokenizer, train_on_prefixes):
    ex = examples[0]
    row = tokenize_example(ex.messages, tokenizer, train_on_prefixes=train_on_prefixes)
    assert len(row["input_ids"]) == len(row["labels"])
    assert all(lab in (IGNORE, tok) for tok, lab in zip(row["input_ids"], row["labels"]))
    runs = trained_text(row, tokenizer)
    text = "".join(runs)
    assert text == expected_trained(ex.messages, train_on_prefixes)

    assistant = [m for m in ex.messages if m["role"] == "assistant"]
    for t, m in enumerate(assistant, 1):
        analysis = m["content"].split("step by step: ", 1)[1].split("</analyze>")[0]
        code = m["content"].split("```python\n", 1)[1].split("\n```")[0]
        assert analysis in text and code in text and "\\boxed{" in text
        assert (analyze_prefix(t) in text) is train_on_prefixes
    assert (VERIFY_PREFIX in text) is train_on_prefixes
    assert "[Code Output]" not in text and "True\n```" not in text and "False\n```" not in text
    assert SYSTEM_PROMPT not in text and "Compute" not in text
    assert ex.messages[1]["content"] not in text  # problem + step 1 (later steps are quoted by the analysis)
    assert "<|im_start|>" not in text and text.count("<|im_end|>") == len(assistant)


def test_code_output_is_never_trained_and_prefix_switch_changes_count(examples, tokenizer):
    for ex in examples[:20]:
        off = tokenize_example(ex.messages, tokenizer, train_on_prefixes=False)
        on = tokenize_example(ex.messages, tokenizer, train_on_prefixes=True)
        assert off["input_ids"] == on["input_ids"]
        n_off = sum(lab != IGNORE for lab in off["labels"])
        n_on = sum(lab != IGNORE for lab in on["labels"])
        assert 0 < n_off < n_on < len(on["input_ids"])
        assert all("[Code Output]" not in r for r in trained_text(on, tokenizer))


def test_max_length_truncates(examples, tokenizer):
    row = tokenize_example(examples[0].messages, tokenizer, max_length=50)
    assert len(row["input_ids"]) == len(row["labels"]) == 50


def test_assistant_content_must_render_verbatim(examples, tokenizer):
    messages = [dict(m) for m in examples[0].messages]
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | upper }}<|im_end|>\n{% endfor %}"
    )
    with pytest.raises(ValueError, match="verbatim"):
        tokenize_example(messages, tokenizer)


def test_tokens_match_the_verifier_prompts_at_every_generation_start(examples, tokenizer):
    """Train as the staged verifier infers: at each point where a stage prompt ends (a forced
    prefix without its trailing space, an executed code output), the training tokens up to there
    are exactly the prompt's tokens, so the next trained token is one the model generates from
    that prompt (for the analysis: `` Paragraph``, the prefix's space merged into it)."""
    from genprm.engine.base import GenerationRequest
    from genprm.engine.prompts import render_prompt_ids

    checked = 0
    for ex in examples[:10]:
        row = tokenize_example(ex.messages, tokenizer)
        system, user, turn = ex.messages[0], ex.messages[1], ex.messages[2]
        content = turn["content"]
        for _, end in sorted(turn["prefix_spans"] + turn["exec_spans"]):
            req = GenerationRequest(messages=[system, {"role": "user", "content": user["content"]}],
                                    assistant_prefix=prompt_prefix(content[:end]), max_tokens=1)
            prompt = render_prompt_ids(tokenizer, req)
            assert row["input_ids"][: len(prompt)] == prompt, content[:end][-30:]
            assert row["labels"][len(prompt)] != IGNORE  # generation starts right there, trained
            checked += 1
    assert checked >= 30


def test_judgement_tokens_and_weighted_loss(examples, tokenizer):
    """Weight 1 is the plain mean loss; weight w adds (w - 1) x the judgement tokens' loss, and only theirs."""
    import torch
    import torch.nn.functional as F

    from genprm.training.masking import judgement_tokens, weighted_lm_loss

    previous, (yes, no) = judgement_tokens(tokenizer)
    assert tokenizer.decode([yes]) == "Yes" and tokenizer.decode([no]) == "No" and tokenizer.decode([previous]).endswith("{")
    row = tokenize_example(examples[0].messages, tokenizer)
    ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
    logits = torch.randn(1, ids.shape[1], len(tokenizer), generator=torch.Generator().manual_seed(0))
    target = labels[:, 1:]
    ce = F.cross_entropy(logits[0, :-1], target[0], ignore_index=IGNORE, reduction="none")
    trained = target[0] != IGNORE
    at = (ids[0, :-1] == previous) & ((target[0] == yes) | (target[0] == no))
    n_turns = sum(m["role"] == "assistant" for m in examples[0].messages)
    assert int(at.sum()) == n_turns  # one verdict per turn; Yes/No elsewhere would not count
    plain = weighted_lm_loss(logits, labels, ids, judgement=(previous, (yes, no)), weight=1.0)
    assert torch.allclose(plain, ce[trained].mean())
    heavy = weighted_lm_loss(logits, labels, ids, judgement=(previous, (yes, no)), weight=5.0, num_items=int(trained.sum()))
    assert torch.allclose(heavy, (ce[trained].sum() + 4 * ce[at].sum()) / trained.sum())
