"""The whole-solution review prompt for general LLM teachers (GenPRM part 4), and its parsers.

The paper's teacher (QwQ-32B) gets one user prompt with the problem and the solution's
paragraphs in ``<paragraph_k>`` tags, **indexed from 1**, and writes a review split into
``### Paragraph k`` sections, each with ``<analyze>...</analyze>`` and ``<verify>...</verify>``
(a ```` ```python ```` block that is executed; its output is appended as ``[Code Output]``),
ending with the index of the earliest wrong paragraph, or -1, in ``$\\boxed{}$``. The wording
below is ours; the structure (tags, sections, code, boxed index) is the paper's::

    prompt = whole_solution_prompt("Compute (3 + 4) * 2.", ["3 + 4 = 7", "7 * 2 = 14. The answer is 14."])
    verdicts, earliest = parse_whole_solution(review_text, n_paragraphs=2)
    first_error = earliest_error_to_zero_based(earliest)      # ProcessBench's 0-based label

Index convention: the boxed index is **1-based** (paragraph k is ``<paragraph_k>``, k >= 1) and
-1 means "no error"; :func:`earliest_error_to_zero_based` converts it to the 0-based label used by
:class:`genprm.records.Rationale` and ProcessBench (k -> k - 1, -1 -> -1).

Per-paragraph verdicts are a heuristic for free-form teachers: the prompt asks each section to end
by saying whether the paragraph is correct or incorrect, and :func:`parse_whole_solution` reads the
last such statement of each section (after its last ``[Code Output]``). The boxed index is the
authoritative answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "PARAGRAPH_HEADING",
    "WHOLE_SOLUTION_PROMPT_END",
    "whole_solution_prompt",
    "parse_whole_solution_prompt",
    "parse_whole_solution",
    "earliest_error_to_zero_based",
    "earliest_error_to_one_based",
]

PARAGRAPH_HEADING = "### Paragraph {k}"
"""Heading of the review section of paragraph ``k`` (1-based)."""

_INTRO = (
    "The following is a math problem and a solution (split into paragraphs, enclosed with tags and indexed from 1):"
)
_INSTRUCTIONS = (
    "Your task is to verify the correctness of each paragraph of the solution. "
    "Split your verification by `### Paragraph {ID}`.\n\n"
    "Your verification of each paragraph has two parts, wrapped in `<analyze></analyze>` and "
    "`<verify></verify>` respectively:\n"
    "1. in `<analyze></analyze>`, analyze the reasoning of the paragraph and explain in detail why it "
    "is correct or incorrect;\n"
    "2. in `<verify></verify>`, write **Python code** in the form ```python\n{CODE}\n``` that checks "
    "every detail of the paragraph that code can check, and print the results of the checks. Every "
    "code block is executed automatically and its output is shown to you as `[Code Output]`; read "
    "that output before you conclude, and end the part by saying whether the paragraph is correct "
    "or incorrect.\n\n"
    "After all paragraphs, if you found an error, return the **index of the paragraph where the "
    "earliest error occurs**; otherwise return **-1** (which denotes \"not found\")."
)
WHOLE_SOLUTION_PROMPT_END = "Put your final answer (the index) in the form $\\boxed{INDEX}$."
"""The last line of :func:`whole_solution_prompt` (text after it is the teacher's, in plain prompts)."""

_PROMPT = re.compile(
    r"\[Math Problem\]\n\n(?P<problem>.*?)\n\n\[Solution\]\n\n(?P<solution>.*)\n\nYour task is to verify",
    re.DOTALL,
)
_PARAGRAPH = re.compile(r"<paragraph_(\d+)>\n(.*?)\n</paragraph_\1>", re.DOTALL)
_HEADING = re.compile(r"^### Paragraph (\d+)[ \t]*$", re.MULTILINE)
_BOXED_INDEX = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_CODE_OUTPUT = "[Code Output]"
_STATEMENT = re.compile(r"\b(?:is|are)\s+(not\s+)?(correct|incorrect|wrong)\b", re.IGNORECASE)


def whole_solution_prompt(problem: str, steps: Sequence[str]) -> str:
    """The single user prompt asking a teacher to review ``steps`` (paragraph k = ``steps[k-1]``)."""
    if not steps:
        raise ValueError("a solution needs at least one paragraph")
    tagged = "\n\n".join(f"<paragraph_{k}>\n{step}\n</paragraph_{k}>" for k, step in enumerate(steps, start=1))
    return (
        f"{_INTRO}\n\n[Math Problem]\n\n{problem}\n\n[Solution]\n\n{tagged}\n\n"
        f"{_INSTRUCTIONS}\n\n{WHOLE_SOLUTION_PROMPT_END}"
    )


def parse_whole_solution_prompt(text: str) -> tuple[str, list[str]]:
    """Inverse of :func:`whole_solution_prompt`: ``(problem, steps)``; ``ValueError`` on other text."""
    m = _PROMPT.search(text)
    if not m:
        raise ValueError("not a whole-solution review prompt (no [Math Problem] / [Solution] sections)")
    found = _PARAGRAPH.findall(m.group("solution"))
    if not found or [int(k) for k, _ in found] != list(range(1, len(found) + 1)):
        raise ValueError("the prompt's paragraphs are not tagged <paragraph_1>, <paragraph_2>, ...")
    return m.group("problem"), [body for _, body in found]


def _section_verdict(section: str) -> bool | None:
    """The last 'is correct' / 'is incorrect' statement after the section's last code output."""
    tail = section
    cut = section.rfind(_CODE_OUTPUT)
    if cut >= 0:
        tail = section[cut:]
    elif "</analyze>" in section:
        tail = section[section.rfind("</analyze>") :]
    found = _STATEMENT.findall(tail)
    if not found:
        return None
    negated, word = found[-1]
    return word.lower() == "correct" and not negated


def parse_whole_solution(text: str, n_paragraphs: int | None = None) -> tuple[list[bool | None], int | None]:
    """Per-paragraph verdicts and the boxed earliest-error index of a whole-solution review.

    ``verdicts[k - 1]`` is paragraph k's verdict (``None`` when its section is missing or states
    none); the list has ``n_paragraphs`` entries (default: the highest section number). The
    index is the last ``\\boxed{<integer>}`` after the last section heading, **1-based** with -1
    for "no error", exactly as written (``None`` when there is none); convert it with
    :func:`earliest_error_to_zero_based`.
    """
    heads = list(_HEADING.finditer(text))
    n = n_paragraphs if n_paragraphs is not None else max((int(h.group(1)) for h in heads), default=0)
    verdicts: list[bool | None] = [None] * n
    for i, head in enumerate(heads):
        k = int(head.group(1))
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        if 1 <= k <= n:
            verdicts[k - 1] = _section_verdict(text[head.end() : end])
    tail = text[heads[-1].end() :] if heads else text
    boxed = _BOXED_INDEX.findall(tail)
    return verdicts, (int(boxed[-1]) if boxed else None)


def earliest_error_to_zero_based(index: int) -> int:
    """The paper's 1-based boxed index (-1: none) as a 0-based step label (-1: none)."""
    if index == -1:
        return -1
    if index < 1:
        raise ValueError(f"a 1-based paragraph index is >= 1 or -1, got {index}")
    return index - 1


def earliest_error_to_one_based(first_error: int) -> int:
    """A 0-based step label (-1: none) as the paper's 1-based boxed index (-1: none)."""
    if first_error == -1:
        return -1
    if first_error < 0:
        raise ValueError(f"a 0-based step index is >= 0 or -1, got {first_error}")
    return first_error + 1
