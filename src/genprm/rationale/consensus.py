"""Consensus filtering: keep a solution only if the teacher agrees with its step labels.

The rule (GenPRM part 4, made precise). Both sides are 0/1 sequences over the solution's steps:
the teacher's verdicts (1 = Yes) and the Monte-Carlo label (e.g. ``labels["rpe"]``). Each is
first **closed after its first 0**: every step after the first 0 becomes 0 (a step that builds
on a wrong step is wrong; RPE labels already have this form). The solution is kept iff the two
closed sequences are equal on every step. Equivalently: the sequences agree up to and including
the first 0 of either side, i.e. the teacher's earliest error equals the label's (-1 = none);
what the teacher says about steps after its first No does not matter.

Examples (teacher, label -> kept?): ``1 1 0 1`` vs ``1 1 0 0`` -> yes (both first err at 2);
``1 0 0`` vs ``1 1 0`` -> no; ``1 1 1`` vs ``1 1 1`` -> yes; ``1 1 1`` vs ``1 1 0`` -> no.

:func:`filter_consensus` applies the rule and reports retention overall, per solution generator
(``Solution.generator``) and per problem source (``Solution.metadata["source"]``, else the
problem id's prefix before its first ``/``). The paper kept about 49%.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genprm.rationale.parsing import ParsedReview
from genprm.records import Solution, StepValues

__all__ = ["close_after_first_zero", "first_zero", "agrees", "ConsensusResult", "filter_consensus", "problem_source"]

log = logging.getLogger(__name__)


def first_zero(seq: Sequence[int | bool]) -> int:
    """Index of the first 0 / False, -1 when there is none."""
    return next((i for i, v in enumerate(seq) if not v), -1)


def close_after_first_zero(seq: Sequence[int | bool]) -> list[int]:
    """``seq`` as 0/1 with every entry after the first 0 set to 0."""
    out, seen_zero = [], False
    for v in seq:
        seen_zero = seen_zero or not v
        out.append(0 if seen_zero else 1)
    return out


def agrees(verdicts: Sequence[int | bool], labels: Sequence[int]) -> bool:
    """The consensus rule of the module docstring; lengths must match (``ValueError`` otherwise)."""
    if len(verdicts) != len(labels):
        raise ValueError(f"{len(verdicts)} verdicts for {len(labels)} labels")
    return close_after_first_zero(verdicts) == close_after_first_zero(labels)


def problem_source(solution: Solution) -> str:
    src = solution.metadata.get("source")
    if isinstance(src, str) and src:
        return src
    return solution.problem_id.split("/", 1)[0] or "unknown"


@dataclass
class ConsensusResult:
    kept: list[str]
    """Solution ids kept, in input order."""
    report: dict[str, Any]


def _ratio(kept: int, total: int) -> float:
    return round(kept / total, 4) if total else 0.0


def filter_consensus(
    solutions: Sequence[Solution],
    values: Mapping[str, StepValues],
    parsed: Mapping[str, ParsedReview],
    label: str = "rpe",
) -> ConsensusResult:
    """Keep the solutions whose parsed review agrees with ``values[id].labels[label]``.

    ``solutions`` are all reviewed solutions (those missing from ``parsed`` were dropped by
    parsing and count as not kept). A solution without values or without the label raises
    ``KeyError``; a label of the wrong length raises ``ValueError``.
    """
    kept: list[str] = []
    groups: dict[str, dict[str, dict[str, int]]] = {"by_generator": {}, "by_source": {}}
    disagree = unparsed = 0
    for sol in solutions:
        if sol.id not in values:
            raise KeyError(f"solution {sol.id!r} has no step values")
        labels = values[sol.id].labels.get(label)
        if labels is None:
            raise KeyError(f"solution {sol.id!r} has no {label!r} label")
        if len(labels) != len(sol.steps):
            raise ValueError(f"solution {sol.id!r}: {len(labels)} {label!r} labels for {len(sol.steps)} steps")
        review = parsed.get(sol.id)
        ok = review is not None and agrees(review.verdicts, labels)
        if review is None:
            unparsed += 1
        elif not ok:
            disagree += 1
        if ok:
            kept.append(sol.id)
        for key, name in (("by_generator", sol.generator or "unknown"), ("by_source", problem_source(sol))):
            g = groups[key].setdefault(name, {"reviewed": 0, "kept": 0})
            g["reviewed"] += 1
            g["kept"] += int(ok)
    report: dict[str, Any] = {
        "reviewed": len(solutions),
        "unparsed": unparsed,
        "disagree": disagree,
        "kept": len(kept),
        "retention": _ratio(len(kept), len(solutions)),
    }
    for key, table in groups.items():
        report[key] = {
            name: {**g, "retention": _ratio(g["kept"], g["reviewed"])} for name, g in sorted(table.items())
        }
    log.info("consensus kept %d of %d solutions (%.1f%%)", len(kept), len(solutions), 100 * report["retention"])
    return ConsensusResult(kept, report)
