"""The SFT gate: a clean set passes; each planted defect fails its expectation, naming the row."""

from __future__ import annotations

import pytest

from genprm.data import normalize_text
from genprm.labeling.gate import GateError
from genprm.rationale.gate import run_sft_gate
from genprm.rationale.parsing import parse_review
from genprm.rationale.sft import build_example
from genprm.rationale.synthesis import SynthesisLimits, synthesize


@pytest.fixture(scope="module")
def clean(teacher, sandbox, labelled):
    items = [(s.id, s.problem, s.steps) for s, _ in labelled]
    reviews = synthesize(teacher, sandbox.session, items, SynthesisLimits())
    return [build_example(s, r, parse_review(r)) for (s, _), r in zip(labelled, reviews)]


def _assistant(ex, t=0):
    return [m for m in ex.messages if m["role"] == "assistant"][t]


def _plant(clean, defect):
    examples = [e.model_copy(deep=True) for e in clean]
    victim = examples[1]
    m = _assistant(victim)
    c = m["content"]
    if defect == "tags":
        m["content"] = c.replace("</verify>\n", "", 1)  # after every span: nothing else moves
    elif defect == "code_output":
        s, e = m["exec_spans"][0]
        m["content"], m["exec_spans"] = c[:s] + c[e:], []
    elif defect == "exec_span":
        m["exec_spans"] = [[s + 1, e] for s, e in m["exec_spans"]]
    elif defect == "empty_rationale":
        start, end = len(c[: c.index(": ") + 2]), c.index("</analyze>")
        cut = end - start
        m["content"] = c[:start] + c[end:]
        m["exec_spans"] = [[s - cut, e - cut] for s, e in m["exec_spans"]]
        m["prefix_spans"] = [m["prefix_spans"][0], [p - cut for p in m["prefix_spans"][1]]]
    elif defect == "judgement":
        victim.step_labels = [1 - victim.step_labels[0], *victim.step_labels[1:]]
    elif defect == "duplicate":
        examples.append(victim.model_copy(deep=True))
    elif defect == "balance":
        examples = [e for e in examples if all(e.step_labels)]
    return examples, victim.id


EXPECT = {
    "tags": "tags_ok",
    "code_output": "code_outputs_ok",
    "exec_span": "code_outputs_ok",
    "empty_rationale": "rationale_nonempty",
    "judgement": "judgement_matches",
    "duplicate": "expect_column_values_to_be_unique",
    "balance": "expect_column_mean_to_be_between",
}


def test_clean_set_passes(clean, labelled):
    summary = run_sft_gate(clean, eval_problems={"compute 1 + 2"}, problems={s.id: s.problem for s, _ in labelled})
    assert summary["failed"] == 0 and summary["examples"] == len(clean)
    assert 0 < summary["yes_share"] < 1


@pytest.mark.parametrize("defect", sorted(EXPECT))
def test_planted_defect_fails(clean, defect):
    examples, victim = _plant(clean, defect)
    with pytest.raises(GateError) as info:
        run_sft_gate(examples)
    message = str(info.value)
    assert EXPECT[defect] in message
    if defect != "balance":
        assert f"id={victim!r}" in message
    assert len(info.value.failures) == 1, message


def test_eval_problem_fails(clean, labelled):
    problem = labelled[2][0].problem
    with pytest.raises(GateError) as info:
        run_sft_gate(clean, eval_problems={normalize_text(problem.upper() + "  ")},
                     problems={s.id: s.problem for s, _ in labelled})
    assert "decontaminated" in str(info.value) and labelled[2][0].id in str(info.value)
    # without the mapping the problem is read from user turn 1
    with pytest.raises(GateError):
        run_sft_gate(clean, eval_problems={normalize_text(problem)})
