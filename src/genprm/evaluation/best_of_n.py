"""Best-of-N: select among N policy solutions with PRM rewards, against voting and pass@k.

For each problem there are candidates (final answer, correctness, per-step rewards). For
``N = 1, 2, 4, ... N_max`` (powers of two, plus ``N_max`` itself), subsets of N candidates are
drawn without replacement ``draws`` times with a seed; each method's accuracy (percent) is
averaged over draws and problems:

- ``prm_last`` / ``prm_min`` / ``prm_avg``: the candidate with the highest last / minimum /
  mean step reward. Candidates within ``tie_margin`` of the best score are tied (the PRM cannot
  tell them apart: several solutions at P(Yes) 0.9999 differ by noise, not by evidence); a tie
  goes to the candidate whose answer most candidates of the subset share, then to the earlier
  one. ``tie_margin=0`` ties only equal scores;
- ``majority``: the most frequent final answer (answers grouped by exact match after
  :func:`normalise_answer`, optionally merged with :func:`genprm.grading.is_equivalent`;
  candidates without an answer do not vote);
- ``prm_vote``: like ``majority`` but each vote weighs the candidate's PRM score
  (``vote_score``: last, min or avg);
- ``pass_at_k``: whether any candidate of the subset is correct (an upper bound).

Usage::

    curves = best_of_n_curves(problems, n_max=16, draws=20, seed=0)
    curves["prm_min"]["16"]   # accuracy in percent
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Candidate",
    "METHODS",
    "normalise_answer",
    "aggregate",
    "select",
    "sizes_up_to",
    "best_of_n_curves",
]

Aggregate = Literal["last", "min", "avg"]
METHODS = ("prm_last", "prm_min", "prm_avg", "majority", "prm_vote", "pass_at_k")


@dataclass(frozen=True)
class Candidate:
    """One sampled solution: its final answer (None: none found), correctness and step rewards."""

    answer: str | None
    correct: bool
    step_rewards: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_rewards", tuple(float(r) for r in self.step_rewards))
        if not self.step_rewards:
            raise ValueError("a candidate needs at least one step reward")


_SPACES = re.compile(r"\s+")


def normalise_answer(answer: str) -> str:
    """Exact-match key: no whitespace, ``$``, ``\\left``/``\\right``, trailing period; lower case."""
    s = answer.replace("\\left", "").replace("\\right", "").replace("$", "").replace("\\!", "")
    s = _SPACES.sub("", s).rstrip(".").lower()
    return s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


def aggregate(rewards: Sequence[float], how: Aggregate) -> float:
    if how == "last":
        return rewards[-1]
    if how == "min":
        return min(rewards)
    if how == "avg":
        return sum(rewards) / len(rewards)
    raise ValueError(f"unknown aggregate {how!r}; known: last, min, avg")


def _groups(cands: Sequence[Candidate], equivalent: Callable[[str, str], bool] | None) -> list[list[int]]:
    """Indices of candidates grouped by answer, in order of first appearance (no answer: no group)."""
    keys: list[str] = []
    raw: list[str] = []
    groups: list[list[int]] = []
    for i, c in enumerate(cands):
        if c.answer is None or not c.answer.strip():
            continue
        key = normalise_answer(c.answer)
        for g, k in enumerate(keys):
            if k == key or (equivalent is not None and equivalent(raw[g], c.answer)):
                groups[g].append(i)
                break
        else:
            keys.append(key)
            raw.append(c.answer)
            groups.append([i])
    return groups


def select(
    cands: Sequence[Candidate],
    method: str,
    *,
    vote_score: Aggregate = "last",
    equivalent: Callable[[str, str], bool] | None = None,
    tie_margin: float = 0.0,
) -> bool:
    """Whether ``method`` picks a correct answer among ``cands`` (``tie_margin``: see the module docstring)."""
    if not cands:
        raise ValueError("no candidates")
    if method not in METHODS:
        raise ValueError(f"unknown Best-of-N method {method!r}; known: {', '.join(METHODS)}")
    if method == "pass_at_k":
        return any(c.correct for c in cands)
    if method.startswith("prm_") and method != "prm_vote":
        how = method.removeprefix("prm_")
        scores = [aggregate(c.step_rewards, how) for c in cands]  # type: ignore[arg-type]
        top = max(scores)
        tied = [i for i in range(len(cands)) if scores[i] >= top - tie_margin]
        if len(tied) == 1:
            return cands[tied[0]].correct
        votes = [0] * len(cands)
        for g in _groups(cands, equivalent):
            for i in g:
                votes[i] = len(g)
        best = max(tied, key=lambda i: (votes[i], -i))
        return cands[best].correct
    if method in ("majority", "prm_vote"):
        groups = _groups(cands, equivalent)
        if not groups:
            return cands[0].correct
        if method == "majority":
            weights = [float(len(g)) for g in groups]
        else:
            weights = [sum(aggregate(cands[i].step_rewards, vote_score) for i in g) for g in groups]
        best = max(range(len(groups)), key=lambda g: (weights[g], -g))
        return cands[groups[best][0]].correct
    raise ValueError(f"unknown Best-of-N method {method!r}; known: {', '.join(METHODS)}")


def sizes_up_to(n_max: int) -> list[int]:
    """1, 2, 4, ... up to ``n_max`` (``n_max`` included)."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    sizes, n = [], 1
    while n < n_max:
        sizes.append(n)
        n *= 2
    return [*sizes, n_max]


def best_of_n_curves(
    problems: Sequence[Sequence[Candidate]],
    *,
    n_max: int | None = None,
    draws: int = 10,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    vote_score: Aggregate = "last",
    equivalent: Callable[[str, str], bool] | None = None,
    tie_margin: float = 0.0,
) -> dict[str, dict[str, float]]:
    """``{method: {str(N): accuracy %}}`` averaged over ``draws`` random subsets per problem.

    ``n_max`` defaults to the smallest candidate count; every problem needs at least ``n_max``.
    """
    if not problems:
        raise ValueError("no problems")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown Best-of-N method(s) {unknown}; known: {', '.join(METHODS)}")
    smallest = min(len(p) for p in problems)
    n_max = smallest if n_max is None else n_max
    if smallest < n_max:
        raise ValueError(f"a problem has {smallest} candidates, fewer than n_max={n_max}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    rng = random.Random(seed)
    curves: dict[str, dict[str, float]] = {m: {} for m in methods}
    for n in sizes_up_to(n_max):
        totals = dict.fromkeys(methods, 0.0)
        for cands in problems:
            for _ in range(draws):
                subset = [cands[i] for i in rng.sample(range(len(cands)), n)]
                for m in methods:
                    totals[m] += select(subset, m, vote_score=vote_score, equivalent=equivalent, tie_margin=tie_margin)
        for m in methods:
            curves[m][str(n)] = 100.0 * totals[m] / (len(problems) * draws)
    return curves
