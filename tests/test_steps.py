import pytest

from genprm.steps import format_steps, parse_steps, split_paragraphs


def test_parse_step_forced_text():
    text = "Step 1: 3 + 4 = 7\nStep 2: 7 * 2 = 14\nStep 3: 14 - 5 = 9. The answer is 9."
    assert parse_steps(text) == ["3 + 4 = 7", "7 * 2 = 14", "14 - 5 = 9. The answer is 9."]


def test_multiline_steps_and_out_of_sequence_markers():
    text = "Step 1: first\nstill first\n\nStep 2: second, see Step 1: above\nStep 4: not a step\nStep 3: third"
    assert parse_steps(text) == ["first\nstill first", "second, see Step 1: above\nStep 4: not a step", "third"]


def test_text_before_step_one_is_dropped():
    assert parse_steps("Let me think.\nStep 1: a\nStep 2: b") == ["a", "b"]


def test_fallback_to_paragraphs():
    text = "First we note x.\n\n  Then y = 2.  \n\n\n\nSo the answer is 2."
    assert parse_steps(text) == ["First we note x.", "Then y = 2.", "So the answer is 2."]
    assert split_paragraphs("a\n \nb") == ["a", "b"]
    assert parse_steps("") == []


@pytest.mark.parametrize(
    "steps",
    [["a"], ["x = 1", "y = 2\nz = 3", "The answer is $\\boxed{5}$."], ["Step-wise: fine", "Step two"]],
)
def test_round_trip(steps):
    assert parse_steps(format_steps(steps)) == steps
