"""The world's ProcessBench: policy solutions labelled exactly by the checker.

Each sample is a solution the policy really wrote, in ProcessBench's own schema
(``id, generator, problem, steps, final_answer_correct, label``) so evaluation code treats it
like the real benchmark. ``label`` is the checker's first wrong step (-1 if none) and
``error_kind`` its kind (arithmetic, copy, answer, format, extra: the evaluation reports accuracy
per kind). The set is balanced: as many erroneous as fully correct solutions, at most one of each
kind per problem (so easy problems do not dominate), chosen in a seeded order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from genprm.records import ProcessBenchSample, Solution
from genprm.world.checker import check_solution

__all__ = ["label_solutions", "build_benchmark"]

log = logging.getLogger(__name__)


def label_solutions(solutions: Sequence[Solution], split: str = "world") -> list[ProcessBenchSample]:
    """One ProcessBench sample per solution, labelled by the exact checker."""
    out = []
    for s in solutions:
        res = check_solution(s.problem, s.steps)
        out.append(
            ProcessBenchSample(
                id=s.id,
                generator=s.generator,
                problem=s.problem,
                steps=list(s.steps),
                final_answer_correct=res.final_correct,
                label=res.first_error,
                split=split,
                error_kind=res.first_error_kind,
            )
        )
    return out


def build_benchmark(
    solutions: Sequence[Solution], size: int, *, seed: int = 0, split: str = "world"
) -> tuple[list[ProcessBenchSample], dict]:
    """A balanced benchmark of ``size`` samples (half erroneous, half correct) and its stats.

    Raises ``ValueError`` when the solutions cannot fill it (too few of one kind).
    """
    labelled = label_solutions(solutions, split)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    wrong: dict[str, ProcessBenchSample] = {}
    right: dict[str, ProcessBenchSample] = {}
    for sample, sol in zip(labelled, solutions):
        key = (sample.problem, tuple(sample.steps))
        if key in seen:
            continue
        seen.add(key)
        bucket = right if sample.label == -1 else wrong
        bucket.setdefault(sol.problem_id, sample)
    half = size // 2
    if len(wrong) < half or len(right) < size - half:
        raise ValueError(
            f"cannot build a balanced benchmark of {size}: {len(wrong)} problems with an erroneous "
            f"solution and {len(right)} with a correct one (sample more solutions)"
        )
    rng = random.Random(seed)
    pick_wrong = rng.sample(sorted(wrong), half)
    pick_right = rng.sample(sorted(right), size - half)
    samples = [wrong[k] for k in pick_wrong] + [right[k] for k in pick_right]
    samples.sort(key=lambda s: s.id)
    positions: dict[int, int] = {}
    kinds: dict[str | None, int] = {}
    for s in samples:
        if s.label >= 0:
            positions[s.label] = positions.get(s.label, 0) + 1
            kinds[s.error_kind] = kinds.get(s.error_kind, 0) + 1  # label_solutions sets it for every error
    stats = {
        "size": len(samples),
        "erroneous": half,
        "correct": size - half,
        "process_error_but_correct_answer": sum(1 for s in samples if s.label >= 0 and s.final_answer_correct),
        "first_error_position": {str(k): v for k, v in sorted(positions.items())},
        "first_error_kind": dict(sorted(kinds.items())),
        "candidates": {"erroneous": len(wrong), "correct": len(right)},
    }
    return samples, stats
