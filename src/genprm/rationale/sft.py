"""SFT examples in the exact GenPRM conversation format, from kept reviews.

:func:`build_example` turns one reviewed solution into a :class:`~genprm.records.SFTExample`:
the system prompt, one user turn per step (:func:`genprm.conversation.build_messages`) and one
assistant turn per step. Each assistant turn carries

- ``exec_spans``: ``[start, end)`` character offsets of every executed ``[Code Output]`` block
  (``[Code Output]\\n\\n```\\n...\\n```\\n``, exactly what was appended after execution);
- ``prefix_spans``: offsets of the forced stage prefixes (``analyze_prefix(t)``,
  ``VERIFY_PREFIX``, and on fallback turns the ``FALLBACK_JUDGEMENT`` with its joining newline).

Adjacent spans of the same kind are merged.

Per-step reviews are copied as written (each turn's judgement is the teacher's own).
Whole-solution reviews are split into per-paragraph turns in the GenPRM format: the section's
``<analyze>`` text after ``analyze_prefix(k)`` and ``</analyze>\\n``; its first code block after
``VERIFY_PREFIX`` (text the teacher wrote before it is dropped), the executed outputs, later
blocks with the teacher's text between them, the text after the last output, ``</verify>\\n``; then
``judgement(verdict)`` from the paragraph's parsed verdict. A section without executed code
becomes the analysis followed directly by the judgement.

:func:`balance_examples` optionally balances examples with and without a No (``keep`` or
``drop``: the larger group is sampled down, deterministically by seed, keeping input order).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Literal

from genprm.conversation import CODE_STOP, SYSTEM_PROMPT, VERIFY_PREFIX, analyze_prefix, build_messages, judgement
from genprm.rationale.parsing import ParsedReview
from genprm.rationale.synthesis import Review, Segment, segments_text
from genprm.records import SFTExample, Solution

__all__ = ["turn_spans", "whole_solution_turns", "build_example", "balance_examples", "Balance"]

log = logging.getLogger(__name__)

Balance = Literal["keep", "drop"]

_HEADING = re.compile(r"^### Paragraph (\d+)[ \t]*\n", re.MULTILINE)
_CODE_OPEN = "```python\n"


def turn_spans(segments: Sequence[Segment]) -> tuple[str, list[list[int]], list[list[int]]]:
    """``(content, exec_spans, prefix_spans)`` of a turn made of ``segments``."""
    exec_spans: list[list[int]] = []
    prefix_spans: list[list[int]] = []
    pos = 0
    for seg in segments:
        end = pos + len(seg.text)
        target = exec_spans if seg.kind == "exec" else prefix_spans if seg.kind == "prefix" else None
        if target is not None and seg.text:
            if target and target[-1][1] == pos:
                target[-1][1] = end
            else:
                target.append([pos, end])
        pos = end
    return segments_text(segments), exec_spans, prefix_spans


def _exec_offsets(segments: Sequence[Segment]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for seg in segments:
        if seg.kind == "exec":
            out.append((pos, pos + len(seg.text)))
        pos += len(seg.text)
    return out


def whole_solution_turns(review: Review, verdicts: Sequence[bool]) -> list[list[Segment]]:
    """The per-paragraph GenPRM turns of a whole-solution review (see the module docstring).

    ``ValueError`` when the review lacks a section or a code block is not where an output says.
    """
    text = review.text
    execs = _exec_offsets(review.segments)
    heads = list(_HEADING.finditer(text))
    if len(heads) < review.n_steps:
        raise ValueError(f"{review.solution_id}: {len(heads)} sections for {review.n_steps} paragraphs")
    turns = []
    for k in range(1, review.n_steps + 1):
        start = heads[k - 1].end()
        end = heads[k].start() if k < len(heads) else len(text)
        a0, a1 = text.find("<analyze>", start, end), text.find("</analyze>", start, end)
        if a0 < 0 or a1 < 0:
            raise ValueError(f"{review.solution_id}: paragraph {k} has no <analyze> block")
        analysis = text[a0 + len("<analyze>") : a1].strip()
        segs = [Segment("prefix", analyze_prefix(k)), Segment("gen", analysis + "\n</analyze>\n")]
        v0 = text.find("<verify>", a1, end)
        v1 = text.rfind("</verify>", a1, end)
        inside = [(s, e) for s, e in execs if v0 >= 0 and v0 < s and e <= (v1 if v1 >= 0 else end)]
        if inside:
            cursor = v0 + len("<verify>")
            for i, (s, e) in enumerate(inside):
                chunk = text[cursor:s]
                j = chunk.rfind(_CODE_OPEN)
                if j < 0 or not chunk.endswith(CODE_STOP):
                    raise ValueError(f"{review.solution_id}: paragraph {k}: an output without its code block")
                code = chunk[j + len(_CODE_OPEN) : len(chunk) - len(CODE_STOP)]
                if i == 0:
                    segs += [Segment("prefix", VERIFY_PREFIX), Segment("gen", code + CODE_STOP)]
                else:
                    segs.append(Segment("gen", chunk[:j] + _CODE_OPEN + code + CODE_STOP))
                segs.append(Segment("exec", text[s:e]))
                cursor = e
            conclusion = text[cursor : v1 if v1 >= 0 else end]
            segs.append(Segment("gen", conclusion + "</verify>\n" + judgement(bool(verdicts[k - 1]))))
        else:
            segs.append(Segment("gen", judgement(bool(verdicts[k - 1]))))
        turns.append(segs)
    return turns


def build_example(solution: Solution, review: Review, parsed: ParsedReview, *, source: str = "",
                  style: Literal["code", "card"] = "code") -> SFTExample:
    """The SFT conversation of one kept solution."""
    if review.solution_id != solution.id:
        raise ValueError(f"review of {review.solution_id!r} given for solution {solution.id!r}")
    if review.format == "per_step":
        turn_segments = [t.segments for t in review.turns]
    else:
        turn_segments = whole_solution_turns(review, parsed.verdicts)
    if len(turn_segments) != len(solution.steps):
        raise ValueError(f"{solution.id}: {len(turn_segments)} turns for {len(solution.steps)} steps")
    contents, spans = [], []
    for segs in turn_segments:
        content, exec_spans, prefix_spans = turn_spans(segs)
        contents.append(content)
        spans.append((exec_spans, prefix_spans))
    messages = build_messages(solution.problem, solution.steps, contents, style=style, system=SYSTEM_PROMPT)
    turn = 0
    for m in messages:
        if m["role"] == "assistant":
            m["exec_spans"], m["prefix_spans"] = spans[turn]
            turn += 1
    return SFTExample(
        id=solution.id,
        solution_id=solution.id,
        source=source,
        messages=messages,
        step_labels=[int(v) for v in parsed.verdicts],
    )


def balance_examples(examples: Sequence[SFTExample], mode: Balance = "keep", seed: int = 0) -> list[SFTExample]:
    """``keep``: all examples; ``drop``: as many all-Yes examples as examples with a No."""
    if mode == "keep":
        return list(examples)
    if mode != "drop":
        raise ValueError(f"unknown balance mode {mode!r} (keep | drop)")
    yes = [i for i, e in enumerate(examples) if all(e.step_labels)]
    no = [i for i, e in enumerate(examples) if not all(e.step_labels)]
    if not yes or not no:
        log.warning("balance: one class is empty (%d all-Yes, %d with a No); keeping all", len(yes), len(no))
        return list(examples)
    big, small = (yes, no) if len(yes) > len(no) else (no, yes)
    chosen = set(small) | set(random.Random(seed).sample(big, len(small)))
    return [e for i, e in enumerate(examples) if i in chosen]
