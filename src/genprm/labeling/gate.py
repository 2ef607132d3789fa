"""Quality gate over labeled step values: a great-expectations suite that stops the stage.

:func:`run_gate` builds two pandas frames, one row per solution and one per step, and
validates them with an ephemeral great-expectations context. Checks that are no built-in
expectation are computed as helper columns first and expected to be all ``True``:

solutions frame
    schema (exact column set); ``solution_id`` unique; no duplicate solutions (same problem and
    steps, helper ``dup_key``); ``mc_first`` in [0, 1]; ``correct`` not null;
    ``problem_has_both`` (each kept problem has a correct and an incorrect solution, or every one of its
    solutions was kept one-sided on purpose: ``metadata.one_sided`` set by the rollout's
    ``one_sided: keep``);
    ``zeros_after_first_zero`` (after the first MC of 0, every later MC and k is 0);
    ``lengths_match`` (steps, mc, k and every label list have one entry per step).
steps frame
    ``mc`` in [0, 1]; ``k`` >= 0; every label column in {0, 1} and not null; the share of
    1-labels of the training label within ``[min_positive_share, max_positive_share]``.

A failure raises :class:`GateError` whose message lists each failed expectation with up to
five offending rows and ends with what to change (:func:`gate_hint`); the error carries the
gate's ``summary`` (counts, shares and ``failures``: each failed expectation's name, column,
observed value and up to :data:`genprm.quality.MAX_REPORTED_ROWS` rejected rows), which the
labels stage writes into its metrics before it fails. great-expectations is imported only when
the gate runs.

Use::

    summary = run_gate(values, solutions, training_label="rpe", min_positive_share=0.05, max_positive_share=0.95)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from genprm.quality import GateError, GateFailure, pandas_validator, share
from genprm.records import Record

__all__ = ["GateError", "SOLUTION_COLUMNS", "gate_frames", "gate_hint", "run_gate"]

log = logging.getLogger(__name__)

SOLUTION_COLUMNS = [
    "solution_id", "problem_id", "mc_first", "correct", "n_steps", "dup_key",
    "problem_has_both", "zeros_after_first_zero", "lengths_match",
]


def _row(r: Record | dict) -> dict:
    return r.to_dict() if isinstance(r, Record) else dict(r)


def _zeros_ok(mc: Sequence[float], k: Sequence[int]) -> bool:
    first = next((i for i, v in enumerate(mc) if v == 0), None)
    if first is None:
        return True
    return all(v == 0 for v in mc[first + 1 :]) and all(x == 0 for x in k[first + 1 :])


def gate_frames(values: Sequence[Record | dict], solutions: Sequence[Record | dict], label_names: Sequence[str]):
    """The (solutions, steps) pandas frames the suite checks, helper columns included."""
    import pandas as pd

    sols = {s["id"]: s for s in map(_row, solutions)}
    rows, steps = [], []
    outcomes: dict[str, set] = {}
    one_sided: dict[str, bool] = {}
    vals = [_row(v) for v in values]
    for v in vals:
        s = sols.get(v["solution_id"], {})
        outcomes.setdefault(v["problem_id"], set()).add(s.get("correct"))
        marked = bool((s.get("metadata") or {}).get("one_sided"))
        one_sided[v["problem_id"]] = one_sided.get(v["problem_id"], True) and marked
    for v in vals:
        s = sols.get(v["solution_id"], {})
        mc, k, labels = list(v.get("mc", [])), list(v.get("k", [])), dict(v.get("labels", {}))
        n = len(s.get("steps", []))
        rows.append({
            "solution_id": v["solution_id"],
            "problem_id": v["problem_id"],
            "mc_first": v.get("mc_first"),
            "correct": s.get("correct"),
            "n_steps": n,
            "dup_key": v["problem_id"] + "\x1f" + "\x1f".join(s.get("steps", [])),
            "problem_has_both": {True, False} <= outcomes[v["problem_id"]] or one_sided[v["problem_id"]],
            "zeros_after_first_zero": _zeros_ok(mc, k),
            "lengths_match": len(mc) == n and len(k) == n and all(len(labels.get(name, [])) == n for name in label_names),
        })
        for t in range(len(mc)):
            step = {"solution_id": v["solution_id"], "step": t, "mc": mc[t], "k": k[t] if t < len(k) else None}
            for name in label_names:
                lab = labels.get(name, [])
                step[f"label_{name}"] = lab[t] if t < len(lab) else None
            steps.append(step)
    step_cols = ["solution_id", "step", "mc", "k", *[f"label_{n}" for n in label_names]]
    return pd.DataFrame(rows, columns=SOLUTION_COLUMNS), pd.DataFrame(steps, columns=step_cols)


def run_gate(
    values: Sequence[Record | dict],
    solutions: Sequence[Record | dict],
    *,
    label_names: Sequence[str] = ("hard", "rpe", "difference"),
    training_label: str = "rpe",
    min_positive_share: float = 0.05,
    max_positive_share: float = 0.95,
) -> dict:
    """Validate labeled values; return a summary, or raise :class:`GateError` listing failures."""
    import great_expectations.expectations as gxe

    if training_label not in label_names:
        raise ValueError(f"training label {training_label!r} is not among {list(label_names)}")
    sol_df, step_df = gate_frames(values, solutions, label_names)
    validate = pandas_validator("labeling")

    is_true = dict(value_set=[True])
    sol_checks = [
        gxe.ExpectTableColumnsToMatchSet(column_set=SOLUTION_COLUMNS, exact_match=True),
        gxe.ExpectColumnValuesToBeUnique(column="solution_id"),
        gxe.ExpectColumnValuesToBeUnique(column="dup_key"),
        gxe.ExpectColumnValuesToBeBetween(column="mc_first", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToNotBeNull(column="mc_first"),
        gxe.ExpectColumnValuesToNotBeNull(column="correct"),
        gxe.ExpectColumnValuesToBeInSet(column="problem_has_both", **is_true),
        gxe.ExpectColumnValuesToBeInSet(column="zeros_after_first_zero", **is_true),
        gxe.ExpectColumnValuesToBeInSet(column="lengths_match", **is_true),
    ]
    step_checks = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(step_df.columns), exact_match=True),
        gxe.ExpectColumnValuesToBeBetween(column="mc", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToNotBeNull(column="mc"),
        gxe.ExpectColumnValuesToBeBetween(column="k", min_value=0),
    ]
    for name in label_names:
        step_checks.append(gxe.ExpectColumnValuesToBeInSet(column=f"label_{name}", value_set=[0, 1]))
        step_checks.append(gxe.ExpectColumnValuesToNotBeNull(column=f"label_{name}"))
    step_checks.append(
        gxe.ExpectColumnMeanToBeBetween(
            column=f"label_{training_label}", min_value=min_positive_share, max_value=max_positive_share
        )
    )
    failures = validate("solutions", sol_df, sol_checks, ["solution_id"])
    failures += validate("steps", step_df, step_checks, ["solution_id", "step"])
    summary = {
        "solutions": len(sol_df),
        "steps": len(step_df),
        "expectations": len(sol_checks) + len(step_checks),
        "failed": len(failures),
        "positive_share": share(step_df[f"label_{training_label}"]),
    }
    if failures:
        summary["failures"] = [f.to_dict() for f in failures]
        hint = gate_hint(failures, training_label=training_label, positive_share=summary["positive_share"],
                         min_positive_share=min_positive_share, max_positive_share=max_positive_share)
        raise GateError(failures, hint=hint, summary=summary)
    log.info("quality gate passed: %d expectations over %d solutions, %d steps", summary["expectations"],
             summary["solutions"], summary["steps"])
    return summary


def gate_hint(
    failures: Sequence[GateFailure],
    *,
    training_label: str = "rpe",
    positive_share: float | None = None,
    min_positive_share: float = 0.05,
    max_positive_share: float = 0.95,
) -> str:
    """What to change, in words, for the failed expectations of :func:`run_gate` (one sentence per cause)."""
    out: list[str] = []
    kinds = {(f.expectation, f.column) for f in failures}
    mean_failed = ("expect_column_mean_to_be_between", f"label_{training_label}") in kinds
    if mean_failed and positive_share is not None and positive_share < min_positive_share:
        why = ("no step keeps its chance of reaching the answer: the policy solves none of these problems from its "
               "own steps" if positive_share == 0 else "too few steps keep their chance of reaching the answer: "
               "the policy rarely solves these problems from its own steps")
        out.append(
            f"The {training_label!r} positive share {positive_share:g} is below labels.gate.min_positive_share="
            f"{min_positive_share:g}: {why}. Raise rollout.max_paths or the montecarlo K (montecarlo.k_thresholds), "
            f"use an easier dataset or a stronger policy, or lower labels.gate.min_positive_share."
        )
    elif mean_failed and positive_share is not None and positive_share > max_positive_share:
        out.append(
            f"The {training_label!r} positive share {positive_share:g} is above labels.gate.max_positive_share="
            f"{max_positive_share:g}: almost every step is labelled correct, so the GenPRM would see few errors. "
            f"Use harder problems or a weaker policy, raise labels.epsilon, or raise "
            f"labels.gate.max_positive_share."
        )
    elif mean_failed:
        out.append("The training label has no steps to average: the values are empty (see rollout and montecarlo).")
    if any(f.column == "problem_has_both" for f in failures):
        out.append(
            "A problem lacks a correct or an incorrect solution and its solutions are not marked one-sided "
            "(metadata.one_sided): the solutions file does not match the rollout that made the values; run "
            "`rollout` and `montecarlo` again (rollout.one_sided: keep marks one-sided problems)."
        )
    explained = {("expect_column_mean_to_be_between", f"label_{training_label}"),
                 ("expect_column_values_to_be_in_set", "problem_has_both")}
    if kinds - explained:
        out.append(
            "The other failures are defects of the Monte-Carlo values or labels themselves (not of the data's "
            "difficulty): the values file was edited or comes from another solutions file; run `montecarlo` again."
        )
    return " ".join(out)
