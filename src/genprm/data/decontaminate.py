"""Remove training problems whose text also appears in an evaluation set.

Texts are compared after :func:`normalize_text` (lowercase, LaTeX spacing and ``\\left``/
``\\right`` removed, ``$`` removed, whitespace collapsed, trailing punctuation stripped),
so trivial formatting differences do not hide an overlap. Exact duplicates inside the
training set (after normalisation) are dropped too, keeping the first occurrence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from genprm.records import ProcessBenchSample, Problem

__all__ = ["normalize_text", "decontaminate"]

logger = logging.getLogger(__name__)

# ``\\`` (a LaTeX line break) is matched first so its second backslash is not read as ``\ ``.
_SPACING = re.compile(r"\\\\|\\[,!;:\s]|\\q?quad(?![A-Za-z])")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_WHITESPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s.,;:!?]+$")


def normalize_text(s: str) -> str:
    """A canonical form of a problem text for overlap checks."""
    s = _SPACING.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else " ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = s.replace("$", "").lower()
    s = _WHITESPACE.sub(" ", s).strip()
    return _TRAILING.sub("", s)


def decontaminate(
    train: Sequence[Problem],
    eval_sets: Mapping[str, Sequence[Problem] | Sequence[ProcessBenchSample]],
) -> tuple[list[Problem], dict[str, Any]]:
    """Drop training problems found in any evaluation set, and duplicates within ``train``.

    Returns the kept problems (in their original order) and a report::

        {"train": n_in, "kept": n_out,
         "removed": {eval_name: count, ...},        # a problem may count for several sets
         "removed_ids": {eval_name: [ids], ...},
         "removed_total": count,                    # distinct training problems removed
         "duplicates": count, "duplicate_ids": [ids]}
    """
    eval_texts = {name: {normalize_text(item.problem) for item in items} for name, items in eval_sets.items()}
    removed_ids: dict[str, list[str]] = {name: [] for name in eval_sets}
    duplicate_ids: list[str] = []
    kept: list[Problem] = []
    seen: set[str] = set()
    removed_total = 0
    for problem in train:
        text = normalize_text(problem.problem)
        hits = [name for name, texts in eval_texts.items() if text in texts]
        if hits:
            removed_total += 1
            for name in hits:
                removed_ids[name].append(problem.id)
            continue
        if text in seen:
            duplicate_ids.append(problem.id)
            continue
        seen.add(text)
        kept.append(problem)
    report: dict[str, Any] = {
        "train": len(train),
        "kept": len(kept),
        "removed": {name: len(ids) for name, ids in removed_ids.items()},
        "removed_ids": removed_ids,
        "removed_total": removed_total,
        "duplicates": len(duplicate_ids),
        "duplicate_ids": duplicate_ids,
    }
    logger.info(
        "decontaminate: %d train problems, %d removed as contaminated %s, %d duplicates, %d kept",
        len(train), removed_total, report["removed"], len(duplicate_ids), len(kept),
    )
    return kept, report
