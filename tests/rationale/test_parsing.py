"""Parsing reviews: verdicts, earliest error, and every drop reason (counted, never a crash)."""

from __future__ import annotations

import pytest

from genprm.conversation import FALLBACK_JUDGEMENT, VERIFY_PREFIX, analyze_prefix, judgement
from genprm.rationale.parsing import DROP_REASONS, MalformedReview, parse_review, parse_reviews
from genprm.rationale.synthesis import Review, Segment, StepTurn, SynthesisLimits, synthesize

OUT = "[Code Output]\n\n```\nTrue\n```\n"


def turn(t: int, body: str) -> StepTurn:
    return StepTurn(step=t - 1, segments=[Segment("prefix", analyze_prefix(t)), Segment("gen", body)])


def good(t: int, yes: bool = True) -> str:
    return f"fine.\n</analyze>\n{VERIFY_PREFIX}print(1)\n```\n{OUT}</verify>\n{judgement(yes)}"


def per_step(*bodies: str, n: int | None = None) -> Review:
    turns = [turn(t, b) for t, b in enumerate(bodies, start=1)]
    return Review("s", "per_step", n if n is not None else len(bodies), turns=turns)


def test_per_step_verdicts_and_first_error():
    parsed = parse_review(per_step(good(1), good(2, False), good(3, True)))
    assert parsed.verdicts == (True, False, True) and parsed.first_error == 1
    fallback = "cut analysis\n" + FALLBACK_JUDGEMENT + "{Yes}$\n</output>\n"
    parsed = parse_review(per_step(fallback.replace("cut analysis\n", "cut analysis\n</analyze>\n")))
    assert parsed.verdicts == (True,) and parsed.first_error == -1


PER_STEP_DEFECTS = {
    "repetition": good(1).replace("fine.", "fine.\n" + "the same line again\n" * 8),
    "missing_tags": good(1).replace("</analyze>\n", ""),
    "missing_code_output": good(1).replace(OUT, ""),
    "no_judgement": good(1).replace("\\boxed{Yes}", "Yes"),
    "text_after_end": good(1) + "and then some more text",
}


@pytest.mark.parametrize("reason", sorted(PER_STEP_DEFECTS))
def test_per_step_drop_reasons(reason):
    with pytest.raises(MalformedReview) as info:
        parse_review(per_step(good(1), PER_STEP_DEFECTS[reason]))
    assert info.value.reason == reason


def test_wrong_step_count():
    with pytest.raises(MalformedReview) as info:
        parse_review(per_step(good(1), n=2))
    assert info.value.reason == "wrong_step_count"


def _whole(teacher, sandbox, labelled):
    items = [(s.id, s.problem, s.steps) for s, _ in labelled[:2]]
    return synthesize(teacher, sandbox.session, items, SynthesisLimits(fmt="whole_solution"))


def _with_text(review: Review, text: str) -> Review:
    return Review(review.solution_id, "whole_solution", review.n_steps, segments=[Segment("gen", text)])


def test_whole_solution_verdicts(teacher, sandbox, labelled):
    ref, bad = _whole(teacher, sandbox, labelled)
    assert parse_review(ref).verdicts == (True,) * ref.n_steps and parse_review(ref).first_error == -1
    labels = labelled[1][1].labels["rpe"]
    assert [int(v) for v in parse_review(bad).verdicts] == labels
    assert parse_review(bad).first_error == labels.index(0)


def test_whole_solution_drop_reasons(teacher, sandbox, labelled):
    ref, bad = _whole(teacher, sandbox, labelled)
    n = ref.n_steps
    text = ref.text
    cases = {
        "repetition": text.replace("<analyze>\n", "<analyze>\n" + "we check this again\n" * 9, 1),
        "missing_tags": text.replace(f"### Paragraph {n}\n", "", 1),
        "missing_code_output": text.replace("[Code Output]", "[Output]", 1),
        "no_boxed_index": text.replace("$\\boxed{-1}$", "none"),
        "text_after_end": text + "\nP.S. more words\n",
        "bad_index": text.replace("\\boxed{-1}", f"\\boxed{{{n + 1}}}"),
        "missing_verdict": text.replace("so paragraph 1 is correct", "so paragraph 1 is fine", 1),
        "inconsistent_index": text.replace("\\boxed{-1}", "\\boxed{1}"),
    }
    for reason, doctored in cases.items():
        assert doctored != text, reason
        with pytest.raises(MalformedReview) as info:
            parse_review(_with_text(ref, doctored))
        assert info.value.reason == reason, (reason, str(info.value))
    # counted by reason, never raised
    parsed, dropped = parse_reviews([ref, bad, *(_with_text(ref, t) for t in cases.values())])
    assert set(parsed) == {ref.solution_id, bad.solution_id}
    assert dropped == {reason: 1 for reason in cases}


def test_every_reason_is_tested():
    tested = set(PER_STEP_DEFECTS) | {"wrong_step_count", "no_boxed_index", "bad_index", "missing_verdict",
                                      "inconsistent_index"}
    assert tested == set(DROP_REASONS)
