"""Reading a teacher's review: per-step verdicts and the earliest error, or a reason to drop it.

:func:`parse_review` turns a :class:`~genprm.rationale.synthesis.Review` into a
:class:`ParsedReview` (``verdicts[t]`` True = Yes, ``first_error`` 0-based, -1 for none) or
raises :class:`MalformedReview` whose ``reason`` is one of :data:`DROP_REASONS`;
:func:`parse_reviews` applies it to many reviews and counts the drops in a ``Counter`` (it never
raises for a malformed review)::

    parsed, dropped = parse_reviews(reviews)      # {solution_id: ParsedReview}, Counter(reason -> n)

Drop reasons, checked in this order:

``repetition``        a non-empty line (8+ characters) occurs ``max_repeats`` times or more in a
                      turn / the review (a runaway loop);
``wrong_step_count``  per-step: not one turn per step;
``missing_tags``      per-step turn: not exactly one ``<analyze>...</analyze>`` and one
                      ``<output>...</output>`` in that order, or an unbalanced ``<verify>``;
                      whole-solution: a ``### Paragraph k`` section missing or out of order, or a
                      section without ``<analyze>...</analyze>``;
``missing_code_output`` a ```` ```python ```` block not followed by a ``[Code Output]`` block;
``no_judgement``      per-step turn without ``\\boxed{Yes}`` / ``\\boxed{No}``;
``text_after_end``    per-step: text after ``</output>``; whole-solution: text after the line
                      holding the final boxed index;
``no_boxed_index``    whole-solution: no ``\\boxed{<integer>}`` after the last section;
``bad_index``         whole-solution: the index is not -1 or 1..n;
``missing_verdict``   whole-solution: a paragraph up to the earliest error states no verdict;
``inconsistent_index`` whole-solution: the first paragraph judged incorrect is not the boxed one.

Whole-solution verdicts after the earliest error that state nothing are read as No (every step
from the first error on is wrong).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from genprm.conversation import parse_judgement
from genprm.rationale.prompts import parse_whole_solution
from genprm.rationale.synthesis import Review

__all__ = [
    "DROP_REASONS",
    "MalformedReview",
    "ParsedReview",
    "parse_review",
    "parse_reviews",
    "check_turn",
    "tags_well_formed",
    "code_outputs_follow",
    "repeated_line",
]

DROP_REASONS = (
    "repetition",
    "wrong_step_count",
    "missing_tags",
    "missing_code_output",
    "no_judgement",
    "text_after_end",
    "no_boxed_index",
    "bad_index",
    "missing_verdict",
    "inconsistent_index",
)

_CODE_OPEN = "```python\n"
_CODE_OUTPUT = "[Code Output]"
_HEADING = re.compile(r"^### Paragraph (\d+)[ \t]*$", re.MULTILINE)
_BOXED_INDEX = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_CODE_BLOCK = re.compile(r"```python\n.*?\n```\n", re.DOTALL)


class MalformedReview(ValueError):
    """A review that cannot be used; ``reason`` is one of :data:`DROP_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class ParsedReview:
    """The teacher's per-step verdicts (True = Yes) and its earliest error (0-based, -1: none)."""

    verdicts: tuple[bool, ...]
    first_error: int


def repeated_line(text: str, max_repeats: int = 8, min_length: int = 8) -> str | None:
    """A line (stripped, ``min_length``+ characters) occurring ``max_repeats``+ times, or None."""
    counts = Counter(line.strip() for line in text.splitlines() if len(line.strip()) >= min_length)
    for line, n in counts.most_common(1):
        if n >= max_repeats:
            return line
    return None


def code_outputs_follow(text: str) -> bool:
    """Every python block is directly followed by a ``[Code Output]`` block."""
    for m in _CODE_BLOCK.finditer(text):
        if not text.startswith(_CODE_OUTPUT, m.end()):
            return False
    return text.count(_CODE_OPEN) == len(_CODE_BLOCK.findall(text))


def tags_well_formed(text: str) -> bool:
    for tag in ("analyze", "output"):
        if text.count(f"<{tag}>") != 1 or text.count(f"</{tag}>") != 1:
            return False
    a0, a1, o0, o1 = (text.find(x) for x in ("<analyze>", "</analyze>", "<output>", "</output>"))
    if not a0 < a1 < o0 < o1:
        return False
    v0, v1 = text.count("<verify>"), text.count("</verify>")
    if v0 != v1 or v0 > 1:
        return False
    if v0:
        return a1 < text.find("<verify>") < text.find("</verify>") < o0
    return True


def check_turn(text: str, max_repeats: int = 8) -> bool:
    """The verdict of one per-step assistant turn; raises :class:`MalformedReview`."""
    if repeated_line(text, max_repeats):
        raise MalformedReview("repetition", repr(repeated_line(text, max_repeats))[:80])
    if not tags_well_formed(text):
        raise MalformedReview("missing_tags")
    if not code_outputs_follow(text):
        raise MalformedReview("missing_code_output")
    verdict = parse_judgement(text)
    if verdict is None:
        raise MalformedReview("no_judgement")
    if text[text.rfind("</output>") + len("</output>") :].strip():
        raise MalformedReview("text_after_end")
    return verdict


def _parse_per_step(review: Review, max_repeats: int) -> ParsedReview:
    if len(review.turns) != review.n_steps:
        raise MalformedReview("wrong_step_count", f"{len(review.turns)} turns for {review.n_steps} steps")
    verdicts = tuple(check_turn(turn.text, max_repeats) for turn in review.turns)
    first = next((i for i, v in enumerate(verdicts) if not v), -1)
    return ParsedReview(verdicts, first)


def _parse_whole(review: Review, max_repeats: int) -> ParsedReview:
    text, n = review.text, review.n_steps
    if repeated_line(text, max_repeats):
        raise MalformedReview("repetition")
    heads = list(_HEADING.finditer(text))
    if [int(h.group(1)) for h in heads] != list(range(1, n + 1)):
        raise MalformedReview("missing_tags", f"sections {[int(h.group(1)) for h in heads]} for {n} paragraphs")
    for i, head in enumerate(heads):
        section = text[head.end() : heads[i + 1].start() if i + 1 < n else len(text)]
        if section.count("<analyze>") != 1 or section.count("</analyze>") != 1:
            raise MalformedReview("missing_tags", f"paragraph {i + 1} has no single <analyze> block")
        if section.count("<verify>") != section.count("</verify>"):
            raise MalformedReview("missing_tags", f"paragraph {i + 1} has an unbalanced <verify>")
    if not code_outputs_follow(text):
        raise MalformedReview("missing_code_output")
    tail = text[heads[-1].end() :]
    boxed = list(_BOXED_INDEX.finditer(tail))
    if not boxed:
        raise MalformedReview("no_boxed_index")
    end_of_line = tail.find("\n", boxed[-1].end())
    if end_of_line >= 0 and tail[end_of_line:].strip():
        raise MalformedReview("text_after_end")
    index = int(boxed[-1].group(1))
    if not (index == -1 or 1 <= index <= n):
        raise MalformedReview("bad_index", str(index))
    section_verdicts, _ = parse_whole_solution(text, n_paragraphs=n)
    first = -1 if index == -1 else index - 1
    upto = n if first == -1 else first + 1
    if any(v is None for v in section_verdicts[:upto]):
        raise MalformedReview("missing_verdict")
    judged_first = next((i for i, v in enumerate(section_verdicts) if v is False), -1)
    if judged_first != first:
        raise MalformedReview("inconsistent_index", f"boxed {index}, first incorrect paragraph {judged_first + 1}")
    verdicts = tuple(bool(v) if v is not None else False for v in section_verdicts)
    return ParsedReview(verdicts, first)


def parse_review(review: Review, max_repeats: int = 8) -> ParsedReview:
    """Verdicts and earliest error of ``review``; raises :class:`MalformedReview`."""
    if review.format == "per_step":
        return _parse_per_step(review, max_repeats)
    return _parse_whole(review, max_repeats)


def parse_reviews(reviews: Iterable[Review], max_repeats: int = 8) -> tuple[dict[str, ParsedReview], Counter]:
    """Parse every review: ``({solution_id: ParsedReview}, Counter(drop reason -> count))``."""
    parsed: dict[str, ParsedReview] = {}
    dropped: Counter = Counter()
    for review in reviews:
        try:
            parsed[review.solution_id] = parse_review(review, max_repeats)
        except MalformedReview as exc:
            dropped[exc.reason] += 1
    return parsed, dropped
