"""The GenPRM conversation format: the compatibility contract with published checkpoints.

Published GenPRM models expect exactly this (see the project's method notes):

- system: :data:`SYSTEM_PROMPT`;
- user turn 1: problem + newline + step 1 (the released code's join; the model card's
  ``Question: {problem}\\n\\n{step_1}`` is available as ``style="card"``); user turn t: step t;
- assistant turn t, generated in stages:
  1. :func:`analyze_prefix` (``<analyze>\\nLet's analyze the Paragraph {t} step by step: ``),
     generated until :data:`ANALYZE_STOP`;
  2. :data:`VERIFY_PREFIX`, generated until :data:`CODE_STOP`; the code is executed and
     :func:`code_output_block` appended; generation continues (up to 3 code rounds) until
     :data:`OUTPUT_STOP`;
  3. when the budget runs out: the analysis alone followed by :data:`FALLBACK_JUDGEMENT`.
- the judgement reads :func:`judgement` (``<output>\\n**Judgement**: $\\boxed{Yes}$\\n</output>``).

This module only builds and parses strings; generation and execution live elsewhere.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "SYSTEM_PROMPT",
    "DIRECT_SYSTEM_PROMPT",
    "ANALYZE_STOP",
    "VERIFY_PREFIX",
    "CODE_STOP",
    "OUTPUT_STOP",
    "FALLBACK_JUDGEMENT",
    "TAGS",
    "analyze_prefix",
    "prompt_prefix",
    "join_generated",
    "code_output_block",
    "judgement",
    "user_turns",
    "build_messages",
    "parse_judgement",
]

SYSTEM_PROMPT = "You are a math teacher. Your task is to review and critique the paragraphs in solution step by step."
DIRECT_SYSTEM_PROMPT = (
    "You are a math teacher. Your task is to review and critique the paragraphs in solution step by step. "
    "For each paragraph, answer directly whether it is correct with \\boxed{Yes} or \\boxed{No}."
)

ANALYZE_STOP = "</analyze>\n"
VERIFY_PREFIX = "<verify>\nLet's use python code to find any potential error:\n```python\n"
CODE_STOP = "\n```\n"
OUTPUT_STOP = "</output>\n"
FALLBACK_JUDGEMENT = "<output>\n**Judgement**: $\\boxed"
TAGS = ("<analyze>", "</analyze>", "<verify>", "</verify>", "<output>", "</output>")


def analyze_prefix(step_number: int) -> str:
    """Stage-1 prefix of assistant turn ``step_number`` (1-based)."""
    return f"<analyze>\nLet's analyze the Paragraph {step_number} step by step: "


def prompt_prefix(prefix: str) -> str:
    """The part of a forced stage prefix that goes into the prompt: all but its trailing spaces.

    Byte-level BPE merges a space into the word after it (``": Paragraph"`` is ``":"``,
    ``" Paragraph"``), so a model trained on whole conversations never saw a prompt that ends in
    a lone space token. Sent without the space, the model generates ``" Paragraph"`` itself,
    exactly the tokens it was trained on. :func:`join_generated` puts the turn text back together.
    """
    return prefix.rstrip(" ")


def join_generated(prefix: str, text: str) -> str:
    """The full ``prefix`` followed by ``text``, generated after :func:`prompt_prefix` of it.

    The spaces the model re-generates are not doubled, so the turn reads exactly like the
    protocol's (``prefix + rest``); a continuation without them is appended after the full prefix.
    """
    cut = prompt_prefix(prefix)
    held = prefix[len(cut):]
    return cut + text if text.startswith(held) else prefix + text


def code_output_block(output: str) -> str:
    """What follows an executed code block: ``[Code Output]`` and the output in a fence."""
    return f"[Code Output]\n\n```\n{output}\n```\n"


def judgement(correct: bool) -> str:
    return f"<output>\n**Judgement**: $\\boxed{{{'Yes' if correct else 'No'}}}$\n</output>\n"


def user_turns(problem: str, steps: list[str], style: Literal["code", "card"] = "code") -> list[str]:
    """The user turns of a GenPRM conversation: problem with step 1, then one step each."""
    if not steps:
        raise ValueError("a solution needs at least one step")
    first = f"{problem}\n{steps[0]}" if style == "code" else f"Question: {problem}\n\n{steps[0]}"
    return [first, *steps[1:]]


def build_messages(
    problem: str,
    steps: list[str],
    assistant_turns: list[str] | None = None,
    *,
    style: Literal["code", "card"] = "code",
    system: str = SYSTEM_PROMPT,
) -> list[dict[str, str]]:
    """Chat messages: system, then user/assistant pairs (as many assistant turns as given)."""
    users = user_turns(problem, steps, style)
    assistant_turns = assistant_turns or []
    if len(assistant_turns) > len(users):
        raise ValueError(f"{len(assistant_turns)} assistant turns for {len(users)} steps")
    messages = [{"role": "system", "content": system}]
    for i, u in enumerate(users):
        messages.append({"role": "user", "content": u})
        if i < len(assistant_turns):
            messages.append({"role": "assistant", "content": assistant_turns[i]})
    return messages


_JUDGEMENT = re.compile(r"\\boxed\{\s*(Yes|No)\s*\}")


def parse_judgement(text: str) -> bool | None:
    """The last ``\\boxed{Yes}`` / ``\\boxed{No}`` of a text as True / False, or None."""
    found = _JUDGEMENT.findall(text)
    return None if not found else found[-1] == "Yes"
