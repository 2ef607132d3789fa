"""Step labels from stored Monte-Carlo values (part 3 of the method), and their quality.

Every label is a pure function of a :class:`genprm.records.StepValues` (``mc_first``,
``mc``), so a new criterion needs no re-sampling. With ``prev_t`` = MC(s_t) (``mc_first``
for the first step, ``mc[t-1]`` after) and ``cur_t`` = MC(s_t, a_t) = ``mc[t]``:

- **RPE** (the paper's choice): P_t = cur_t / prev_t, label 1 iff P_t >= epsilon (0.8). It is
  computed as ``cur_t >= epsilon * prev_t`` (with a 1e-9 tolerance), so no division happens.
- **difference**: P_t = cur_t - prev_t, label 1 iff P_t >= threshold (-0.1 .. -0.5).
- **hard**: label 1 iff cur_t > 0.

Edge cases (documented choices):

- ``prev_t == 0`` and ``cur_t == 0`` (a dead prefix: once a step has MC 0, all later steps are
  0 by the propagation rule): the ratio 0/0 is undefined; RPE and difference give label **0**,
  like the exact checker, which marks every step after the first error 0. (Without this rule
  the difference label would be 1 after every dead step, since 0 - 0 >= threshold.)
- ``cur_t > prev_t`` (the step raised the success rate): P_t > 1, label 1. This includes
  ``prev_t == 0 < cur_t`` (a ratio of +inf), which happens only at the first step of a problem
  kept one-sided with no correct path (rollout ``one_sided: keep``: ``mc_first == 0``) whose
  first step still leads to correct completions: label 1 for RPE and difference alike.
- ``mc_first == 0`` (one-sided problem, above) with ``mc[0] == 0``: every label is 0, and
  ``mc_first == 1`` (no incorrect path) is an ordinary denominator. Nothing divides by zero.

:func:`quality_metrics` compares these labels with the world's exact step labels
(``check_solution(...).step_labels``): the paper's Table 3 at world scale.

Use::

    values = apply_labels(values, epsilon=0.8, difference_threshold=-0.3)
    metrics = quality_metrics(values, solutions)
"""

from __future__ import annotations

from collections.abc import Sequence

from genprm.records import Solution, StepValues

__all__ = [
    "TOLERANCE",
    "label_names",
    "rpe_label",
    "rpe_labels",
    "difference_labels",
    "hard_labels",
    "apply_labels",
    "quality_metrics",
    "QUALITY_CRITERIA",
]

TOLERANCE = 1e-9
"""Ratios and differences equal to the threshold up to this count as reaching it."""

QUALITY_CRITERIA: tuple[tuple[str, str, float], ...] = (
    ("hard", "hard", 0.0),
    ("rpe@0.5", "rpe", 0.5),
    ("rpe@0.8", "rpe", 0.8),
    ("rpe@1.0", "rpe", 1.0),
    ("difference@-0.1", "difference", -0.1),
    ("difference@-0.2", "difference", -0.2),
    ("difference@-0.3", "difference", -0.3),
    ("difference@-0.4", "difference", -0.4),
    ("difference@-0.5", "difference", -0.5),
)
"""(name, kind, parameter) of every criterion :func:`quality_metrics` scores."""


def label_names(epsilon: float = 0.8, difference_threshold: float = -0.3) -> list[str]:
    """Names of the labels :func:`apply_labels` stores (their parameters live in the config)."""
    return ["hard", "rpe", "difference"]


def _previous(mc_first: float, mc: Sequence[float]) -> list[float]:
    return [mc_first, *mc[:-1]] if mc else []


def rpe_label(prev: float, cur: float, epsilon: float) -> int:
    """1 iff ``cur / prev >= epsilon``; when ``prev == 0``: 1 iff ``cur > 0`` (see the module docstring)."""
    if prev <= 0.0:
        return int(cur > 0.0)
    return int(cur >= epsilon * prev - TOLERANCE)


def rpe_labels(mc_first: float, mc: Sequence[float], epsilon: float = 0.8) -> list[int]:
    """RPE labels of one solution's steps."""
    return [rpe_label(p, c, epsilon) for p, c in zip(_previous(mc_first, mc), mc)]


def difference_labels(mc_first: float, mc: Sequence[float], threshold: float = -0.3) -> list[int]:
    """1 iff ``MC(s_t,a_t) - MC(s_t) >= threshold``; where ``MC(s_t) == 0``: 1 iff ``MC(s_t,a_t) > 0``."""
    return [
        int(c > 0.0) if p <= 0.0 else int(c - p >= threshold - TOLERANCE) for p, c in zip(_previous(mc_first, mc), mc)
    ]


def hard_labels(mc: Sequence[float]) -> list[int]:
    """1 iff ``MC(s_t,a_t) > 0``."""
    return [int(c > 0.0) for c in mc]


def apply_labels(values: Sequence[StepValues], *, epsilon: float = 0.8, difference_threshold: float = -0.3) -> list[StepValues]:
    """Copies of ``values`` with ``labels`` = {hard, rpe, difference} computed from ``mc``."""
    out = []
    for v in values:
        labels = dict(v.labels)
        labels["hard"] = hard_labels(v.mc)
        labels["rpe"] = rpe_labels(v.mc_first, v.mc, epsilon)
        labels["difference"] = difference_labels(v.mc_first, v.mc, difference_threshold)
        out.append(v.model_copy(update={"labels": labels}))
    return out


def _criterion(kind: str, param: float, v: StepValues) -> list[int]:
    if kind == "hard":
        return hard_labels(v.mc)
    if kind == "rpe":
        return rpe_labels(v.mc_first, v.mc, param)
    return difference_labels(v.mc_first, v.mc, param)


def _first_zero(labels: Sequence[int]) -> int:
    return next((i for i, x in enumerate(labels) if x == 0), -1)


def quality_metrics(values: Sequence[StepValues], solutions: Sequence[Solution]) -> dict[str, dict[str, float]]:
    """Agreement of each criterion in :data:`QUALITY_CRITERIA` with the world's exact step labels.

    Per criterion: ``step_accuracy`` (share of steps whose label equals the checker's),
    ``error_precision`` / ``error_recall`` / ``error_f1`` (label 0 as the positive class: a
    step judged wrong), ``first_error_accuracy`` (the first 0-label equals the checker's first
    error, -1 for none), and ProcessBench's ``acc_error`` / ``acc_correct`` / ``f1`` on that
    first-error prediction. Solutions must be world problems (the checker raises otherwise).
    """
    from genprm.world.checker import check_solution

    by_id = {s.id: s for s in solutions}
    truth: list[tuple[StepValues, list[int], int]] = []
    for v in values:
        sol = by_id.get(v.solution_id)
        if sol is None:
            raise KeyError(f"no solution with id {v.solution_id!r} for its values")
        res = check_solution(sol.problem, sol.steps)
        if len(res.step_labels) != len(v.mc):
            raise ValueError(f"{v.solution_id}: checker has {len(res.step_labels)} steps, values have {len(v.mc)}")
        truth.append((v, res.step_labels, res.first_error))
    out: dict[str, dict[str, float]] = {}
    for name, kind, param in QUALITY_CRITERIA:
        same = total = tp = fp = fn = 0
        first_ok = err_n = err_ok = cor_n = cor_ok = 0
        for v, gold, gold_first in truth:
            pred = _criterion(kind, param, v)
            for g, p in zip(gold, pred):
                total += 1
                same += g == p
                tp += (g == 0) and (p == 0)
                fp += (g == 1) and (p == 0)
                fn += (g == 0) and (p == 1)
            hit = _first_zero(pred) == gold_first
            first_ok += hit
            if gold_first >= 0:
                err_n, err_ok = err_n + 1, err_ok + hit
            else:
                cor_n, cor_ok = cor_n + 1, cor_ok + hit
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        ae = err_ok / err_n if err_n else 0.0
        ac = cor_ok / cor_n if cor_n else 0.0
        out[name] = {
            "step_accuracy": round(same / total, 4) if total else 0.0,
            "error_precision": round(prec, 4),
            "error_recall": round(rec, 4),
            "error_f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0,
            "first_error_accuracy": round(first_ok / len(truth), 4) if truth else 0.0,
            "acc_error": round(ae, 4),
            "acc_correct": round(ac, 4),
            "f1": round(2 * ae * ac / (ae + ac), 4) if ae + ac else 0.0,
            "solutions": len(truth),
            "steps": total,
        }
    return out
