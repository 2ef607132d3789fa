"""Prompt rendering, context-length policy and stop-string handling shared by the backends.

* :func:`render_prompt_ids` turns a request into token ids the same way in every backend that
  has the model's tokenizer (see :mod:`genprm.engine.base` for the rule).
* :func:`fit_to_context` applies the context policy: a prompt that leaves no room for a single
  new token raises ``ValueError`` naming the request index and the lengths; a prompt that fits
  but leaves less room than ``max_tokens`` has its ``max_tokens`` lowered, with a warning.
* :func:`cut_at_stop` finds the stop string that fired and cuts the text there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from genprm.engine.base import GenerationRequest

__all__ = ["load_tokenizer", "render_prompt_text", "render_prompt_ids", "fit_to_context", "check_fits", "cut_at_stop"]

log = logging.getLogger(__name__)


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def render_prompt_text(tokenizer: Any, request: GenerationRequest) -> tuple[str, bool]:
    """The prompt text and whether special tokens must be added when tokenizing it."""
    if request.messages is None:
        assert request.prompt is not None
        return request.prompt + request.assistant_prefix, True
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the request has chat messages but the tokenizer has no chat template")
    text = tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)
    return text + request.assistant_prefix, False


def render_prompt_ids(tokenizer: Any, request: GenerationRequest) -> list[int]:
    text, add_special = render_prompt_text(tokenizer, request)
    return list(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def candidate_sequences(
    tokenizer: Any, prompt: str | GenerationRequest, candidates: Sequence[str], max_model_len: int | None
) -> tuple[list[int], list[list[int]]]:
    """Prompt ids and ``prompt + candidate`` ids for :meth:`Generator.score_continuations`.

    Each candidate is tokenized on its own (no special tokens); an empty one, or a sequence
    longer than the context (when ``max_model_len`` is known), is an error.
    """
    req = prompt if isinstance(prompt, GenerationRequest) else GenerationRequest(prompt=prompt)
    base = render_prompt_ids(tokenizer, req)
    cands = [list(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in candidates]
    for i, c in enumerate(cands):
        if not c:
            raise ValueError(f"candidate {i} ({candidates[i]!r}) is empty after tokenization")
    full = [base + c for c in cands]
    if max_model_len is not None:
        check_fits([len(x) for x in full], max_model_len, "candidate")
    return base, full


def fit_to_context(prompt_lens: Sequence[int], requests: Sequence[GenerationRequest], max_model_len: int) -> list[int]:
    """Per request, how many tokens it may generate (``max_tokens`` lowered to fit the context)."""
    budgets = []
    for i, (plen, req) in enumerate(zip(prompt_lens, requests, strict=True)):
        room = max_model_len - plen
        if room < 1:
            raise ValueError(
                f"request {i}: prompt is {plen} tokens, the context is {max_model_len} tokens: "
                f"no room to generate (shorten the prompt or raise max_model_len)"
            )
        if req.max_tokens > room:
            log.warning(
                "request %d: prompt %d + max_tokens %d > context %d; generating at most %d tokens",
                i, plen, req.max_tokens, max_model_len, room,
            )
        budgets.append(min(req.max_tokens, room))
    return budgets


def check_fits(lengths: Sequence[int], max_model_len: int, what: str = "sequence") -> None:
    """Raise ``ValueError`` naming the index if a full sequence (prompt + forced text) is too long."""
    for i, n in enumerate(lengths):
        if n > max_model_len:
            raise ValueError(f"{what} {i}: {n} tokens, the context is {max_model_len} tokens")


def cut_at_stop(text: str, stops: Sequence[str], include: bool) -> tuple[str, str | None]:
    """Cut ``text`` at the stop string that completes earliest (ties: list order), as vLLM does.

    Returns the cut text (ending with the stop string when ``include``) and the stop string,
    or ``(text, None)`` when none occurs.
    """
    best: tuple[int, int, str] | None = None  # (end, list index, stop)
    for idx, stop in enumerate(stops):
        pos = text.find(stop)
        if pos >= 0 and (best is None or (pos + len(stop), idx) < best[:2]):
            best = (pos + len(stop), idx, stop)
    if best is None:
        return text, None
    end, _, stop = best
    return (text[:end] if include else text[: end - len(stop)]), stop
