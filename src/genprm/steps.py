"""Splitting solutions into steps and writing them back.

Step-forced policies answer as ``Step 1: ...\\nStep 2: ...`` (the assistant turn is
pre-filled with ``Step 1:``). :func:`parse_steps` splits such text into step bodies;
text without step markers falls back to blank-line paragraphs, which is how ProcessBench
and most datasets store solutions. :func:`format_steps` is the inverse of the step-forced
form: ``parse_steps(format_steps(steps)) == steps`` for any steps that are stripped,
non-empty and do not themselves contain a line starting with ``Step <n>:``.
"""

from __future__ import annotations

import re

__all__ = ["STEP_PREFIX", "format_steps", "parse_steps", "split_paragraphs"]

STEP_PREFIX = "Step 1:"
"""What a step-forced assistant turn is pre-filled with."""

_MARKER = re.compile(r"^[ \t]*Step[ \t]+(\d+)[ \t]*:[ \t]?", re.MULTILINE)


def format_steps(steps: list[str]) -> str:
    """``["a", "b"]`` -> ``"Step 1: a\\nStep 2: b"``."""
    return "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1))


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, stripped, empty ones dropped."""
    return [p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def parse_steps(text: str) -> list[str]:
    """Step bodies of a solution text.

    If the text has a ``Step 1:`` marker at a line start, the text is cut at each
    ``Step <n>:`` marker whose number continues the sequence (1, 2, 3, ...); a marker that
    breaks the sequence stays inside the current step. Text before ``Step 1:`` is dropped.
    Otherwise the solution is split into blank-line paragraphs.
    """
    markers = [m for m in _MARKER.finditer(text)]
    expected = 1
    cuts: list[re.Match] = []
    for m in markers:
        if int(m.group(1)) == expected:
            cuts.append(m)
            expected += 1
    if not cuts:
        return split_paragraphs(text)
    steps = []
    for i, m in enumerate(cuts):
        end = cuts[i + 1].start() if i + 1 < len(cuts) else len(text)
        steps.append(text[m.end() : end].strip())
    return steps
