"""SFT examples: the exact GenPRM format, spans at the executed outputs and forced prefixes."""

from __future__ import annotations

import re

import pytest

from genprm.conversation import FALLBACK_JUDGEMENT, SYSTEM_PROMPT, VERIFY_PREFIX, analyze_prefix, judgement
from genprm.rationale.parsing import parse_review
from genprm.rationale.sft import balance_examples, build_example
from genprm.rationale.synthesis import SynthesisLimits, synthesize

OUTPUT_BLOCK = re.compile(r"\[Code Output\]\n\n```\n.*?\n```\n", re.DOTALL)


def _examples(teacher, sandbox, labelled, **limits):
    items = [(s.id, s.problem, s.steps) for s, _ in labelled]
    reviews = synthesize(teacher, sandbox.session, items, SynthesisLimits(**limits))
    return [build_example(s, r, parse_review(r), source="world") for (s, _), r in zip(labelled, reviews)]


@pytest.mark.parametrize("fmt", ["per_step", "whole_solution"])
def test_exact_format(teacher, sandbox, labelled, fmt):
    for (sol, values), ex in zip(labelled, _examples(teacher, sandbox, labelled, fmt=fmt)):
        roles = [m["role"] for m in ex.messages]
        assert roles == ["system"] + ["user", "assistant"] * len(sol.steps)
        assert ex.messages[0]["content"] == SYSTEM_PROMPT
        users = [m["content"] for m in ex.messages if m["role"] == "user"]
        assert users == [f"{sol.problem}\n{sol.steps[0]}", *sol.steps[1:]]
        assert ex.step_labels == values.labels["rpe"]
        assistants = [m for m in ex.messages if m["role"] == "assistant"]
        for t, m in enumerate(assistants, start=1):
            c = m["content"]
            head = analyze_prefix(t)
            verify = c.index(VERIFY_PREFIX)
            assert c.startswith(head) and c.index("</analyze>\n") < verify
            assert c.endswith("</verify>\n" + judgement(bool(ex.step_labels[t - 1])))
            # prefix spans: exactly the analyze prefix and the verify opening
            assert [c[s:e] for s, e in m["prefix_spans"]] == [head, VERIFY_PREFIX]
            assert m["prefix_spans"][1] == [verify, verify + len(VERIFY_PREFIX)]
            # exec spans: exactly the [Code Output] blocks, right after the code fence
            blocks = [(x.start(), x.end()) for x in OUTPUT_BLOCK.finditer(c)]
            assert [tuple(s) for s in m["exec_spans"]] == blocks and len(blocks) == 1
            s, e = m["exec_spans"][0]
            assert c[:s].endswith("\n```\n") and c[s:e].endswith("\n```\n")
            assert c[s:e].splitlines()[-2] == ("True" if ex.step_labels[t - 1] else "False")


def test_per_step_and_whole_solution_share_analysis_code_and_output(teacher, sandbox, labelled):
    per_step = _examples(teacher, sandbox, labelled, fmt="per_step")
    whole = _examples(teacher, sandbox, labelled, fmt="whole_solution")
    for a, b in zip(per_step, whole):
        for ma, mb in zip(a.messages, b.messages):
            if ma["role"] != "assistant":
                assert ma == mb
                continue
            ca, cb = ma["content"], mb["content"]
            assert ca[: ca.index("</verify>")] == cb[: len(ca[: ca.index("</verify>")])]
            assert [ca[s:e] for s, e in ma["exec_spans"]] == [cb[s:e] for s, e in mb["exec_spans"]]


def test_fallback_turn_spans(teacher, sandbox, labelled):
    [ex] = _examples(teacher, sandbox, labelled[:1], max_code_rounds=0)
    for t, m in enumerate([m for m in ex.messages if m["role"] == "assistant"], start=1):
        c = m["content"]
        assert m["exec_spans"] == []
        (s0, e0), (s1, e1) = m["prefix_spans"]
        assert c[s0:e0] == analyze_prefix(t) and c[s1:e1] == FALLBACK_JUDGEMENT
        assert c[e1:] == "{No}$\n</output>\n"


def test_balance(teacher, sandbox, labelled):
    examples = _examples(teacher, sandbox, labelled)
    extra = examples + [e.model_copy(update={"id": e.id + "+"}) for e in examples if all(e.step_labels)]
    assert balance_examples(extra, "keep") == extra
    dropped = balance_examples(extra, "drop", seed=1)
    assert sum(all(e.step_labels) for e in dropped) == sum(not all(e.step_labels) for e in dropped) == len(labelled) // 2
    assert dropped == balance_examples(extra, "drop", seed=1)
    assert [e.id for e in dropped] == [e.id for e in extra if e in dropped]  # input order kept
