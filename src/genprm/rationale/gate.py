"""Quality gate over the SFT dataset: a great-expectations suite that stops the stage.

:func:`run_sft_gate` builds two pandas frames and validates them with an ephemeral
great-expectations context, in the style of :mod:`genprm.labeling.gate` (checks that are no
built-in expectation are helper columns expected to be all ``True``):

examples frame (one row per :class:`~genprm.records.SFTExample`)
    ``id`` unique; ``roles_ok`` (system prompt, then alternating user/assistant turns, one pair
    per step label); ``decontaminated`` (the problem's :func:`genprm.data.normalize_text` form is
    not among the evaluation problems').
turns frame (one row per assistant turn)
    ``tags_ok`` (one ``<analyze>`` and one ``<output>`` block in order, ``<verify>`` balanced);
    ``code_outputs_ok`` (every python block is followed by a ``[Code Output]`` block and the
    ``exec_spans`` point exactly at those blocks); ``prefix_ok`` (the turn starts with its
    ``analyze_prefix`` and a prefix span covers it); ``rationale_nonempty`` (text in the
    analysis after the prefix); ``judgement_matches`` (the boxed Yes/No equals the step label);
    ``label`` in {0, 1} with its mean (the Yes share) within ``[min_yes_share, max_yes_share]``.

A failure raises :class:`~genprm.quality.GateError` listing each failed expectation with
up to five offending rows and what to change (:func:`sft_gate_hint`); it carries the gate's
``summary`` with ``failures`` (name, column, observed value, rejected rows of each), which the
synthesis stage writes into its metrics before it fails::

    summary = run_sft_gate(examples, eval_problems={normalize_text(p.problem) for p in evals},
                           problems={s.id: s.problem for s in solutions})
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from genprm.conversation import SYSTEM_PROMPT, analyze_prefix, parse_judgement
from genprm.quality import GateError, GateFailure, pandas_validator, share
from genprm.rationale.parsing import code_outputs_follow, tags_well_formed
from genprm.records import SFTExample

__all__ = ["GateError", "sft_gate_frames", "run_sft_gate", "sft_gate_hint"]

log = logging.getLogger(__name__)

_OUTPUT_HEAD = "[Code Output]\n\n```\n"
_OUTPUT_TAIL = "\n```\n"
_CODE_STOP = "\n```\n"


def _exec_ok(content: str, spans: Sequence[Sequence[int]]) -> bool:
    if content.count("```python\n") != len(spans) or not code_outputs_follow(content):
        return False
    for s, e in spans:
        block = content[s:e]
        if not (block.startswith(_OUTPUT_HEAD) and block.endswith(_OUTPUT_TAIL) and content[:s].endswith(_CODE_STOP)):
            return False
    return True


def _roles_ok(ex: SFTExample) -> bool:
    msgs = ex.messages
    n = len(ex.step_labels)
    if len(msgs) != 1 + 2 * n or msgs[0]["role"] != "system" or msgs[0]["content"] != SYSTEM_PROMPT:
        return False
    return all(m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(msgs[1:]))


def sft_gate_frames(
    examples: Sequence[SFTExample],
    eval_problems: Collection[str] = (),
    problems: Mapping[str, str] | None = None,
):
    """The (examples, turns) pandas frames the suite checks, helper columns included.

    ``problems`` maps solution id to problem text (default: the first line of user turn 1).
    """
    import pandas as pd

    from genprm.data import normalize_text

    rows, turns = [], []
    for ex in examples:
        users = [m for m in ex.messages if m["role"] == "user"]
        problem = (problems or {}).get(ex.solution_id)
        if problem is None:
            problem = users[0]["content"].split("\n", 1)[0] if users else ""
        rows.append({
            "id": ex.id,
            "solution_id": ex.solution_id,
            "roles_ok": _roles_ok(ex),
            "decontaminated": normalize_text(problem) not in eval_problems,
        })
        assistants = [m for m in ex.messages if m["role"] == "assistant"]
        for t, m in enumerate(assistants):
            content = m["content"]
            prefix = analyze_prefix(t + 1)
            end = content.find("</analyze>")
            label = ex.step_labels[t] if t < len(ex.step_labels) else None
            verdict = parse_judgement(content)
            turns.append({
                "id": ex.id,
                "turn": t,
                "label": label,
                "tags_ok": tags_well_formed(content),
                "code_outputs_ok": _exec_ok(content, m.get("exec_spans", [])),
                "prefix_ok": content.startswith(prefix) and [0, len(prefix)] in [list(p) for p in m.get("prefix_spans", [])],
                "rationale_nonempty": end > len(prefix) and content[len(prefix) : end].strip() != "",
                "judgement_matches": verdict is not None and label is not None and int(verdict) == label,
            })
    ex_cols = ["id", "solution_id", "roles_ok", "decontaminated"]
    turn_cols = ["id", "turn", "label", "tags_ok", "code_outputs_ok", "prefix_ok", "rationale_nonempty",
                 "judgement_matches"]
    return pd.DataFrame(rows, columns=ex_cols), pd.DataFrame(turns, columns=turn_cols)


def run_sft_gate(
    examples: Sequence[SFTExample],
    *,
    eval_problems: Collection[str] = (),
    problems: Mapping[str, str] | None = None,
    min_yes_share: float = 0.2,
    max_yes_share: float = 0.95,
) -> dict[str, Any]:
    """Validate the SFT examples; return a summary, or raise ``GateError`` listing failures.

    ``eval_problems`` are evaluation problem texts already in ``normalize_text`` form.
    """
    import great_expectations.expectations as gxe

    ex_df, turn_df = sft_gate_frames(examples, eval_problems, problems)
    validate = pandas_validator("sft")

    is_true = dict(value_set=[True])
    ex_checks = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeInSet(column="roles_ok", **is_true),
        gxe.ExpectColumnValuesToBeInSet(column="decontaminated", **is_true),
    ]
    turn_checks = [
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        *[
            gxe.ExpectColumnValuesToBeInSet(column=c, **is_true)
            for c in ("tags_ok", "code_outputs_ok", "prefix_ok", "rationale_nonempty", "judgement_matches")
        ],
        gxe.ExpectColumnMeanToBeBetween(column="label", min_value=min_yes_share, max_value=max_yes_share),
    ]
    failures = validate("examples", ex_df, ex_checks, ["id"])
    failures += validate("turns", turn_df, turn_checks, ["id", "turn"])
    summary = {
        "examples": len(ex_df),
        "turns": len(turn_df),
        "expectations": len(ex_checks) + len(turn_checks),
        "failed": len(failures),
        "yes_share": share(turn_df["label"]),
    }
    if failures:
        summary["failures"] = [f.to_dict() for f in failures]
        hint = sft_gate_hint(failures, yes_share=summary["yes_share"], min_yes_share=min_yes_share,
                             max_yes_share=max_yes_share)
        raise GateError(failures, hint=hint, summary=summary)
    log.info("SFT gate passed: %d expectations over %d examples, %d turns", summary["expectations"],
             summary["examples"], summary["turns"])
    return summary


_FORMAT_COLUMNS = {"roles_ok", "tags_ok", "code_outputs_ok", "prefix_ok", "rationale_nonempty", "judgement_matches"}


def sft_gate_hint(
    failures: Sequence[GateFailure],
    *,
    yes_share: float | None = None,
    min_yes_share: float = 0.2,
    max_yes_share: float = 0.95,
) -> str:
    """What to change, in words, for the failed expectations of :func:`run_sft_gate` (one sentence per cause)."""
    out: list[str] = []
    columns = {f.column for f in failures}
    if any(f.expectation == "expect_table_row_count_to_be_between" for f in failures):
        out.append("There are no SFT examples: consensus kept none (see the `consensus` report in the metrics).")
    if any(f.expectation == "expect_column_mean_to_be_between" for f in failures) and yes_share is not None:
        if yes_share < min_yes_share:
            out.append(
                f"The Yes share {yes_share:g} is below synthesis.gate.min_yes_share={min_yes_share:g}: the kept "
                f"steps are mostly judged wrong (the policy's steps are mostly wrong, or the teacher agrees with "
                f"the labels mostly on errors). Use a stronger policy or easier problems, or lower "
                f"synthesis.gate.min_yes_share."
            )
        elif yes_share > max_yes_share:
            out.append(
                f"The Yes share {yes_share:g} is above synthesis.gate.max_yes_share={max_yes_share:g}: the GenPRM "
                f"would see few wrong steps. Set synthesis.balance: drop (as many all-Yes examples as with a No), "
                f"use harder problems, or raise synthesis.gate.max_yes_share."
            )
    if "decontaminated" in columns:
        out.append(
            "A training problem is also an evaluation problem: check the prepare stage's decontamination "
            "(prepare section) and run `prepare` again."
        )
    if columns & _FORMAT_COLUMNS or "id" in columns:
        out.append(
            "Some examples are malformed (their rows are listed above): the teacher's reviews do not have the "
            "GenPRM format; check synthesis.engine and synthesis.format, and raise synthesis.max_tokens_per_step "
            "if reviews were cut off."
        )
    return " ".join(out)
