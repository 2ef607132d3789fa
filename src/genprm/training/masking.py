"""Tokenize a GenPRM conversation and mark the tokens the GenPRM itself generates (the loss mask).

The conversation is rendered once with the tokenizer's chat template and tokenized whole
(as at inference), with character offsets. A token is trained only when every character it
covers lies inside an assistant turn's content (or the end-of-turn token right after it)
and outside:

- the turn's ``exec_spans`` (executed ``[Code Output]`` blocks: never trained on);
- the turn's ``prefix_spans`` (forced stage prefixes), unless ``train_on_prefixes`` (a
  prefix's trailing spaces are not held out: BPE merges them into the first generated word).

System and user turns and the template's role markers are never trained on. Labels are the
token ids where trained and ``-100`` elsewhere (the causal-LM shift happens in the model).

Use::

    row = tokenize_example(example.messages, tokenizer, train_on_prefixes=False, max_length=2048)
    row["input_ids"], row["labels"]
"""

from __future__ import annotations

from typing import Any

from genprm.conversation import judgement

__all__ = ["IGNORE", "trained_char_spans", "tokenize_example", "trained_text", "judgement_tokens", "weighted_lm_loss"]

IGNORE = -100


def _subtract(span: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``span`` minus the union of ``holes`` (all ``[start, end)``)."""
    out, cur = [], span[0]
    for s, e in sorted(holes):
        s, e = max(s, span[0]), min(e, span[1])
        if s >= e:
            continue
        if s > cur:
            out.append((cur, s))
        cur = max(cur, e)
    if cur < span[1]:
        out.append((cur, span[1]))
    return out


def trained_char_spans(
    messages: list[dict[str, Any]], text: str, *, train_on_prefixes: bool, end_token: str | None
) -> list[tuple[int, int]]:
    """Character spans of the rendered ``text`` that the GenPRM generates.

    Assistant contents are located in ``text`` in order; a template that rewrites assistant
    content (so it no longer appears verbatim) is an error rather than a silent mis-mask.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, m in enumerate(messages):
        content = m["content"]
        if m["role"] != "assistant":
            found = text.find(content, cursor) if content else cursor
            if found >= 0:  # move past it so an assistant turn is never matched inside a user turn
                cursor = found + len(content)
            continue
        start = text.find(content, cursor)
        if start < 0:
            raise ValueError(f"messages[{i}]: the chat template does not render the assistant content verbatim")
        end = start + len(content)
        holes = [tuple(s) for s in m.get("exec_spans", [])]
        if not train_on_prefixes:
            # a prefix's trailing spaces stay trainable: byte-level BPE merges them into the next word
            holes += [(s, s + len(content[s:e].rstrip(" "))) for s, e in m.get("prefix_spans", [])]
        spans += [(start + s, start + e) for s, e in _subtract((0, len(content)), holes)]
        cursor = end
        if end_token and text.startswith(end_token, end):  # learn to end the turn
            spans.append((end, end + len(end_token)))
            cursor = end + len(end_token)
    return spans


def tokenize_example(
    messages: list[dict[str, Any]], tokenizer, *, train_on_prefixes: bool = False, max_length: int | None = None
) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` (``-100`` where not trained) of one conversation."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    text = tokenizer.apply_chat_template(plain, tokenize=False)
    end_token = _end_of_turn(tokenizer, text)
    spans = trained_char_spans(messages, text, train_on_prefixes=train_on_prefixes, end_token=end_token)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [tok if _inside(off, spans) else IGNORE for tok, off in zip(ids, offsets)]
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": list(ids), "labels": labels}


def _end_of_turn(tokenizer, text: str) -> str | None:
    """The token that closes an assistant turn: ``<|im_end|>`` for ChatML templates, else EOS."""
    for tok in ("<|im_end|>", tokenizer.eos_token):
        if tok and tok in text:
            return tok
    return None


def _inside(off: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    s, e = off
    if s >= e:
        return False
    return any(a <= s and e <= b for a, b in spans)


def trained_text(row: dict[str, list[int]], tokenizer) -> list[str]:
    """The trained runs of a tokenized row, decoded (for inspection and tests)."""
    runs, cur = [], []
    for tok, lab in zip(row["input_ids"], row["labels"]):
        if lab != IGNORE:
            cur.append(tok)
        elif cur:
            runs.append(tokenizer.decode(cur))
            cur = []
    if cur:
        runs.append(tokenizer.decode(cur))
    return runs


def judgement_tokens(tokenizer) -> tuple[int, tuple[int, int]]:
    """``(previous, (yes, no))``: the ids of the judgement's Yes and No tokens and of the token before them.

    Read off the tokenizer by comparing the tokens of ``judgement(True)`` and ``judgement(False)``;
    a tokenizer that does not give the verdict one token of its own is an error.
    """
    yes = tokenizer(judgement(True), add_special_tokens=False)["input_ids"]
    no = tokenizer(judgement(False), add_special_tokens=False)["input_ids"]
    i = next((k for k, (a, b) in enumerate(zip(yes, no)) if a != b), None)
    if i is None or i == 0 or yes[i + 1 :] != no[i + 1 :]:
        raise ValueError("the tokenizer does not give the judgement's Yes/No a token of its own after a shared prefix")
    return yes[i - 1], (yes[i], no[i])


def weighted_lm_loss(logits, labels, input_ids, *, judgement: tuple[int, tuple[int, int]], weight: float,
                     num_items: int | None = None):
    """Causal-LM cross-entropy where each judgement token counts ``weight`` times.

    A judgement token is a label equal to the Yes or No id whose input token before it is the
    judgement's previous token (``\\boxed{`` then ``Yes``), so a Yes elsewhere in the text is an
    ordinary token. The sum is divided by ``num_items`` (the trained tokens of the whole
    accumulated batch, as the trainer counts them) or by this batch's trained tokens, so with
    ``weight`` 1 it is the usual mean loss.
    """
    import torch
    import torch.nn.functional as F

    previous, verdicts = judgement
    logits, target, before = logits[:, :-1], labels[:, 1:], input_ids[:, :-1]
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE,
                         reduction="none").view_as(target)
    is_verdict = (before == previous) & torch.isin(target, torch.tensor(verdicts, device=target.device))
    w = torch.where(is_verdict, torch.as_tensor(weight, dtype=ce.dtype, device=ce.device), torch.ones_like(ce))
    trained = target != IGNORE
    denom = num_items if num_items is not None else trained.sum()
    return (ce * w * trained).sum() / denom
